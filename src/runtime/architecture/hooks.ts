/**
 * Hook points: TransformerLens names mapped to the ONNX values that hold those activations.
 * Values are found at module boundaries (what a module's nodes produce and others read), so
 * the same rules serve every family whose modules discovery resolved.
 */
import type { NodeProto } from '../onnx/types';
import type { ModuleIndex } from './modules';
import type { AttentionInfo, BlockInfo, HookPoint, LinearInfo } from './types';

export type HookKind =
  | 'embed'
  | 'resid_pre'
  | 'resid_post'
  | 'attn_out'
  | 'mlp_out'
  | 'z'
  | 'pattern'
  | 'post'
  | 'cross_attn_out'
  | 'cross_z'
  | 'cross_pattern'
  | 'ln_final';

/** The TransformerLens-style name of an activation; `stack` is `blocks` or `encoder`. */
export function actName(kind: HookKind, layer?: number, stack: 'blocks' | 'encoder' = 'blocks'): string {
  const b = `${stack}.${layer}`;
  switch (kind) {
    case 'embed':
      return stack === 'encoder' ? 'encoder.hook_embed' : 'hook_embed';
    case 'ln_final':
      return 'ln_final.hook_normalized';
    case 'z':
      return `${b}.attn.hook_z`;
    case 'pattern':
      return `${b}.attn.hook_pattern`;
    case 'post':
      return `${b}.mlp.hook_post`;
    case 'cross_z':
      return `${b}.cross_attn.hook_z`;
    case 'cross_pattern':
      return `${b}.cross_attn.hook_pattern`;
    default:
      return `${b}.hook_${kind}`;
  }
}

/** Ops that compute shapes, indices or masks rather than activations. */
const SHAPE_OPS = new Set(['Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Constant', 'ConstantOfShape', 'Range', 'Cast', 'Equal', 'Less', 'Greater', 'Not', 'Where', 'Expand', 'Slice', 'Reshape', 'NonZero', 'Size', 'Trilu']);

/** Builds the hook points of resolved blocks. */
export class HookFinder {
  readonly hooks: HookPoint[] = [];

  constructor(private readonly idx: ModuleIndex) {}

  add(name: string, tensor: string | undefined, layer?: number): void {
    if (!tensor) return;
    this.hooks.push({ name, tensor, layer, shape: this.idx.graph.shape(tensor) });
  }

  /** Output of a linear layer's module (after its bias and any reshape back to [b, s, d]). */
  linearOutput(l: LinearInfo | undefined): string | undefined {
    if (!l) return undefined;
    return this.lastActivation(this.idx.outputs(this.idx.subtree(l.path)));
  }

  /** The activation a linear layer's module reads (before any flattening inside the module). */
  linearInput(l: LinearInfo | undefined): string | undefined {
    if (!l) return undefined;
    const g = this.idx.graph;
    const inside = new Set(this.idx.subtree(l.path));
    let v = g.nodeByName.get(l.node)!.input[0];
    for (let i = 0; i < 8; i++) {
      const p = g.producer.get(v);
      if (!p || !inside.has(p) || !['Reshape', 'Flatten', 'Identity', 'Cast', 'Transpose'].includes(p.op_type)) break;
      v = p.input[0];
    }
    return v;
  }

  /** The Softmax output inside an attention module. */
  softmaxOf(path: string): string | undefined {
    const sm = this.idx.subtree(path).find((n) => n.op_type === 'Softmax');
    return sm?.output[0];
  }

  /** A block's residual output: its activation read by the most nodes outside the block. */
  blockOutput(block: BlockInfo): string | undefined {
    return this.moduleOutput([block.path]);
  }

  /** The activation a module subtree hands on: read by the most nodes outside it (shape values excluded). */
  moduleOutput(paths: string[]): string | undefined {
    const nodes = this.idx.union(paths);
    const inside = new Set(nodes);
    let best: string | undefined;
    let bestCount = 0;
    for (const v of this.idx.outputs(nodes)) {
      const p = this.idx.graph.producer.get(v);
      if (!p || SHAPE_OPS.has(p.op_type)) continue;
      const count = (this.idx.graph.consumers.get(v) ?? []).filter((c) => !inside.has(c)).length;
      if (count >= bestCount && count > 0) {
        best = v;
        bestCount = count;
      }
    }
    return best;
  }

  /**
   * A first block's residual input: the activation read from outside that comes from the
   * embeddings (`reach`) and that the most nodes of the block read (excluding values only read
   * by cross-attention K/V projections, i.e. an encoder's output).
   */
  blockInput(block: BlockInfo, reach: Set<string>): string | undefined {
    const nodes = this.idx.subtree(block.path);
    const inside = new Set(nodes);
    const crossKv = new Set<string>();
    for (const l of [block.crossAttention?.k, block.crossAttention?.v]) if (l) crossKv.add(this.linearInput(l) ?? '');
    let best: string | undefined;
    let bestCount = 0;
    for (const v of this.idx.inputs(nodes)) {
      if (!reach.has(v) || crossKv.has(v)) continue;
      const count = (this.idx.graph.consumers.get(v) ?? []).filter((c) => inside.has(c)).length;
      if (count > bestCount) {
        best = v;
        bestCount = count;
      }
    }
    return best;
  }

  /** Values reachable from `from` through activation ops (not through shape computations). */
  downstream(from: string[], avoid: Set<NodeProto> = new Set()): Set<string> {
    const g = this.idx.graph;
    const seen = new Set<string>(from);
    const queue = [...from];
    while (queue.length) {
      const v = queue.pop()!;
      for (const c of g.consumers.get(v) ?? []) {
        if (c.op_type === 'Shape' || c.op_type === 'Size' || avoid.has(c)) continue;
        for (const o of c.output) {
          if (o && !seen.has(o)) {
            seen.add(o);
            queue.push(o);
          }
        }
      }
    }
    return seen;
  }

  /** Adds every hook point of one block. */
  addBlock(block: BlockInfo, stack: 'blocks' | 'encoder', residPre: string | undefined): string | undefined {
    const L = block.index;
    const post = this.blockOutput(block);
    this.add(actName('resid_pre', L, stack), residPre, L);
    this.addAttention(block.attention, L, stack, false);
    if (block.crossAttention) this.addAttention(block.crossAttention, L, stack, true);
    this.add(actName('post', L, stack), this.linearInput(block.mlp?.out), L);
    this.add(actName('mlp_out', L, stack), this.linearOutput(block.mlp?.out), L);
    this.add(actName('resid_post', L, stack), post, L);
    return post;
  }

  private addAttention(a: AttentionInfo | undefined, L: number, stack: 'blocks' | 'encoder', cross: boolean): void {
    if (!a) return;
    if (!a.fused) {
      this.add(actName(cross ? 'cross_pattern' : 'pattern', L, stack), a.softmax, L);
      this.add(actName(cross ? 'cross_z' : 'z', L, stack), this.linearInput(a.o), L);
    }
    this.add(actName(cross ? 'cross_attn_out' : 'attn_out', L, stack), this.linearOutput(a.o), L);
  }

  private lastActivation(values: string[]): string | undefined {
    const g = this.idx.graph;
    const acts = values.filter((v) => {
      const p = g.producer.get(v);
      return p && !['Shape', 'Gather', 'Unsqueeze', 'Concat', 'Constant'].includes(p.op_type);
    });
    return acts[acts.length - 1];
  }
}
