/**
 * The Layer Explorer's nodes, built from a model summary: model > embedding, blocks (attention
 * with heads, cross-attention, MLP, norms), final norm, unembedding; or the raw module tree
 * for an unrecognised model. Plain data, so building a level is cheap.
 */
import * as vscode from 'vscode';
import type { OpenedModel } from '../engine/protocol';
import type { AttentionSummary, BlockSummary, ComponentSummary } from '../runtime/inspect';
import type { ModuleTree } from '../runtime/architecture/types';

/** contextValue of each kind of node (menus key on these). */
export type NodeKind = 'model' | 'embedding' | 'block' | 'attention' | 'crossAttention' | 'head' | 'mlp' | 'norm' | 'unembedding' | 'projection' | 'stack' | 'module' | 'notice';

/** A node of the Layer Explorer. */
export abstract class ExplorerNode {
  parent?: ExplorerNode;
  abstract readonly kind: NodeKind;
  abstract readonly label: string;
  abstract readonly model: OpenedModel;
  /** The ONNX nodes behind this node (for "Reveal in Graph"). */
  nodes: string[] = [];
  /** Block index, where the node belongs to a block. */
  layer?: number;
  head?: number;

  abstract children(): ExplorerNode[];
  abstract description(): string | undefined;
  tooltip(): string | vscode.MarkdownString | undefined {
    return undefined;
  }
  /** A stable id (used by reveal). */
  get id(): string {
    return `${this.parent?.id ?? ''}/${this.label}`;
  }
  toTreeItem(): vscode.TreeItem {
    const kids = this.children().length > 0;
    const item = new vscode.TreeItem(this.label, kids ? (this.kind === 'model' ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed) : vscode.TreeItemCollapsibleState.None);
    item.id = this.id;
    item.contextValue = this.kind;
    item.description = this.description();
    item.tooltip = this.tooltip();
    item.iconPath = new vscode.ThemeIcon(ICONS[this.kind]);
    return item;
  }
}

const ICONS: Record<NodeKind, string> = {
  model: 'circuit-board',
  embedding: 'symbol-array',
  block: 'layers',
  attention: 'eye',
  crossAttention: 'arrow-swap',
  head: 'eye',
  mlp: 'symbol-method',
  norm: 'symbol-ruler',
  unembedding: 'symbol-key',
  projection: 'arrow-right',
  stack: 'list-tree',
  module: 'symbol-namespace',
  notice: 'info',
};

/** Compact parameter count: 1234 -> 1.2K. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

function paramsTooltip(title: string, c: ComponentSummary | undefined): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.appendMarkdown(`**${title}**`);
  if (!c) return md;
  md.appendMarkdown(`\n\n\`${c.path}\` · ${c.paramCount.toLocaleString('en-US')} parameters · ${c.nodes.length} ONNX nodes\n\n`);
  for (const p of c.params.slice(0, 12)) md.appendMarkdown(`- \`${p.name}\` ${p.dtype}[${p.shape.join(', ')}]\n`);
  if (c.params.length > 12) md.appendMarkdown(`- … ${c.params.length - 12} more\n`);
  return md;
}

class ComponentNode extends ExplorerNode {
  constructor(
    readonly model: OpenedModel,
    readonly kind: NodeKind,
    readonly label: string,
    readonly component: ComponentSummary | undefined,
    private readonly desc?: string,
    private readonly kids: ExplorerNode[] = [],
  ) {
    super();
    this.nodes = component?.nodes ?? [];
    for (const k of kids) k.parent = this;
  }
  children(): ExplorerNode[] {
    return this.kids;
  }
  description(): string | undefined {
    const params = this.component && this.component.paramCount > 0 ? `${formatCount(this.component.paramCount)} params` : undefined;
    return [this.desc, params].filter(Boolean).join(' · ') || undefined;
  }
  override tooltip(): vscode.MarkdownString {
    return paramsTooltip(this.label, this.component);
  }
}

class HeadNode extends ExplorerNode {
  readonly kind = 'head';
  constructor(
    readonly model: OpenedModel,
    readonly attention: AttentionSummary,
    head: number,
    layer: number,
  ) {
    super();
    this.head = head;
    this.layer = layer;
    this.nodes = attention.nodes;
  }
  get label(): string {
    return `head ${this.head}`;
  }
  children(): ExplorerNode[] {
    return [];
  }
  description(): string {
    const kv = this.attention.kvHeads !== this.attention.heads ? ` · KV group ${Math.floor((this.head! * this.attention.kvHeads) / this.attention.heads)}` : '';
    return `d_head ${this.attention.headDim}${kv}`;
  }
  override tooltip(): string {
    return `Head ${this.head} of ${this.attention.path}: [d_head ${this.attention.headDim}]`;
  }
  /** Clicking a head shows its attention pattern (commands/attention.ts). */
  override toTreeItem(): vscode.TreeItem {
    const item = super.toTreeItem();
    item.command = { command: 'mechanist.attentionPatterns', title: 'Show Attention Pattern', arguments: [this] };
    return item;
  }
}

class NoticeNode extends ExplorerNode {
  readonly kind = 'notice';
  constructor(
    readonly model: OpenedModel,
    readonly label: string,
  ) {
    super();
  }
  children(): ExplorerNode[] {
    return [];
  }
  description(): undefined {
    return undefined;
  }
  override tooltip(): string {
    return this.label;
  }
}

class ModuleNode extends ExplorerNode {
  readonly kind = 'module';
  constructor(
    readonly model: OpenedModel,
    readonly tree: ModuleTree,
  ) {
    super();
  }
  get label(): string {
    return this.tree.name || '(root)';
  }
  children(): ExplorerNode[] {
    return this.tree.children.map((c) => Object.assign(new ModuleNode(this.model, c), { parent: this }));
  }
  description(): string {
    return `${this.tree.nodeCount} nodes${this.tree.paramCount ? ` · ${formatCount(this.tree.paramCount)} params` : ''}`;
  }
}

function attentionNode(model: OpenedModel, a: AttentionSummary, layer: number, cross: boolean): ExplorerNode {
  const heads = a.fused ? [] : Array.from({ length: a.heads }, (_, h) => new HeadNode(model, a, h, layer));
  const kv = a.kvHeads !== a.heads ? ` (${a.kvHeads} KV)` : '';
  const node = new ComponentNode(model, cross ? 'crossAttention' : 'attention', cross ? 'cross-attention' : 'attention', a, `${a.heads} heads${kv} × ${a.headDim}${a.fused ? ` · fused ${a.fused}` : ''}`, heads);
  node.layer = layer;
  return node;
}

function mlpDesc(b: BlockSummary): string | undefined {
  const p = b.mlp?.projections;
  if (!p) return undefined;
  const ins = Object.entries(p).filter(([k]) => k.startsWith('in'));
  if (!ins.length || !p.out) return undefined;
  return `${ins[0][1].inFeatures} → ${ins[0][1].outFeatures} → ${p.out.outFeatures}`;
}

function blockNode(model: OpenedModel, b: BlockSummary, label: string): ExplorerNode {
  const kids: ExplorerNode[] = [];
  if (b.attention) kids.push(attentionNode(model, b.attention, b.index, false));
  if (b.crossAttention) kids.push(attentionNode(model, b.crossAttention, b.index, true));
  if (b.mlp) kids.push(Object.assign(new ComponentNode(model, 'mlp', 'mlp', b.mlp, mlpDesc(b)), { layer: b.index }));
  for (const n of b.norms) {
    const name = n.path.split('.').pop()!;
    const p = n.params[0];
    kids.push(Object.assign(new ComponentNode(model, 'norm', name, n, p ? `[${p.shape.join(', ')}]` : undefined), { layer: b.index }));
  }
  const node = new ComponentNode(model, 'block', label, b, undefined, kids);
  node.layer = b.index;
  return node;
}

/** The root node of one open model. */
export class ModelNode extends ExplorerNode {
  readonly kind = 'model';
  private cached?: ExplorerNode[];
  constructor(readonly model: OpenedModel) {
    super();
  }
  get label(): string {
    return this.model.path.split(/[\\/]/).pop()!;
  }
  override get id(): string {
    return `model:${this.model.path}`;
  }
  description(): string {
    const m = this.model;
    return m.family === 'unknown' ? 'unknown architecture' : `${m.family} · ${m.layers} layers · ${m.heads} heads · d ${m.dModel} · ${formatCount(m.paramCount)} params`;
  }
  override tooltip(): vscode.MarkdownString {
    const m = this.model;
    const md = new vscode.MarkdownString(`**${this.label}** (${m.family})\n\n${m.path}\n\n`);
    md.appendMarkdown(`inputs: ${m.inputs.map((i) => `\`${i.name}\` ${i.dtype}[${i.shape.map((d) => d ?? '?').join(', ')}]`).join(', ')}\n\n`);
    md.appendMarkdown(`outputs: ${m.outputs.map((i) => `\`${i.name}\` ${i.dtype}[${i.shape.map((d) => d ?? '?').join(', ')}]`).join(', ')}\n\n`);
    for (const n of m.notices) md.appendMarkdown(`- ${n}\n`);
    return md;
  }
  children(): ExplorerNode[] {
    if (this.cached) return this.cached;
    const m = this.model;
    const kids: ExplorerNode[] = [];
    for (const n of m.notices) kids.push(new NoticeNode(m, n));
    if (m.family === 'unknown') {
      kids.push(...new ModuleNode(m, m.modules).children());
    } else {
      const dims = m.vocabSize ? `${m.vocabSize} × ${m.dModel}` : undefined;
      if (m.embedding) kids.push(new ComponentNode(m, 'embedding', 'embedding', m.embedding, dims));
      if (m.encoderBlocks.length) {
        kids.push(new ComponentNode(m, 'stack', 'encoder', undefined, `${m.encoderBlocks.length} blocks`, m.encoderBlocks.map((b) => blockNode(m, b, `encoder block ${b.index}`))));
      }
      for (const b of m.blocks) kids.push(blockNode(m, b, `block ${b.index}`));
      if (m.finalNorm) kids.push(new ComponentNode(m, 'norm', 'final norm', m.finalNorm));
      if (m.unembedding) kids.push(new ComponentNode(m, 'unembedding', 'unembedding', m.unembedding, dims ? `${m.dModel} → ${m.vocabSize}` : undefined));
      if (m.projection) kids.push(new ComponentNode(m, 'projection', 'projection', m.projection));
    }
    for (const k of kids) k.parent = this;
    this.cached = kids;
    return kids;
  }
}
