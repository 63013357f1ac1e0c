/**
 * The Layer Explorer tree view: one root per open model. When it is shown (and only then), it
 * reopens the models that were open before a window reload (ModelStore.restore).
 */
import * as vscode from 'vscode';
import type { ModelStore } from '../modelStore';
import { ModelNode } from './explorerNodes';
import type { ExplorerNode } from './explorerNodes';

/** A tree node as plain data (the API's treeSnapshot, used by tests). */
export interface SnapshotNode {
  label: string;
  description?: string;
  contextValue?: string;
  children: SnapshotNode[];
}

export class LayerExplorer implements vscode.TreeDataProvider<ExplorerNode>, vscode.Disposable {
  static readonly viewId = 'mechanist.layerExplorer';
  private readonly changed = new vscode.EventEmitter<ExplorerNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private roots: ModelNode[] = [];
  readonly view: vscode.TreeView<ExplorerNode>;
  private readonly subs: vscode.Disposable[] = [];

  private constructor(private readonly store: ModelStore) {
    this.view = vscode.window.createTreeView(LayerExplorer.viewId, { treeDataProvider: this, showCollapseAll: true });
    this.subs.push(
      this.view,
      this.changed,
      store.onDidChange(() => this.refresh()),
      this.view.onDidChangeVisibility((e) => e.visible && this.restore()),
    );
    this.refresh();
    // Not during activation: after it, and only if the view shows (or once it does).
    if (this.view.visible) setTimeout(() => this.view.visible && this.restore(), 0);
  }

  /** Reopens the models of the window before a reload, saying so in the view meanwhile. */
  private restore(): void {
    const waiting = this.store.toRestore().length;
    const done = this.store.restore();
    if (!waiting) return;
    this.view.message = `Reopening ${waiting === 1 ? 'the model' : `${waiting} models`} open before the reload…`;
    void done.finally(() => (this.view.message = undefined));
  }

  /** Creates the view; dispose the result on deactivate. */
  static register(store: ModelStore): LayerExplorer {
    return new LayerExplorer(store);
  }

  private refresh(): void {
    const keep = new Map(this.roots.map((r) => [r.model.id, r]));
    this.roots = this.store.list().map((m) => keep.get(m.id) ?? new ModelNode(m));
    this.changed.fire(undefined);
  }

  getTreeItem(node: ExplorerNode): vscode.TreeItem {
    return node.toTreeItem();
  }

  getChildren(node?: ExplorerNode): ExplorerNode[] {
    return node ? node.children() : this.roots;
  }

  getParent(node: ExplorerNode): ExplorerNode | undefined {
    return node.parent;
  }

  /** The node of a model's block (or a part of it, or one head of its attention), for reveal-from-results. */
  findBlock(modelPath: string, layer: number, kind?: ExplorerNode['kind'], head?: number): ExplorerNode | undefined {
    const root = this.roots.find((r) => r.model.path === modelPath);
    const block = root?.children().find((n) => n.kind === 'block' && n.layer === layer);
    if (!block || !kind) return block;
    const part = block.children().find((n) => n.kind === kind) ?? block;
    if (head === undefined) return part;
    return part.children().find((n) => n.kind === 'head' && n.head === head) ?? part;
  }

  /** Reveals (selects and expands to) a node. */
  async reveal(node: ExplorerNode): Promise<void> {
    await this.view.reveal(node, { select: true, focus: true, expand: true });
  }

  /** The whole tree as plain data, fully expanded. */
  snapshot(): SnapshotNode[] {
    const snap = (n: ExplorerNode): SnapshotNode => {
      const item = n.toTreeItem();
      return {
        label: typeof item.label === 'string' ? item.label : (item.label?.label ?? ''),
        description: typeof item.description === 'string' ? item.description : undefined,
        contextValue: item.contextValue,
        children: n.children().map(snap),
      };
    };
    return this.roots.map(snap);
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
  }
}
