/** The Runs view: past results, newest first; clicking one reopens it without recomputing. */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RunStore, RunSummary } from '../runStore';

export class RunsView implements vscode.TreeDataProvider<RunSummary>, vscode.Disposable {
  static readonly viewId = 'mechanist.runs';
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subs: vscode.Disposable[];

  private constructor(private readonly store: RunStore) {
    this.subs = [this.changed, store.onDidChange(() => this.changed.fire()), vscode.window.registerTreeDataProvider(RunsView.viewId, this)];
  }

  static register(store: RunStore): RunsView {
    return new RunsView(store);
  }

  getTreeItem(r: RunSummary): vscode.TreeItem {
    const item = new vscode.TreeItem(r.label, vscode.TreeItemCollapsibleState.None);
    item.id = r.id;
    item.description = `${path.basename(r.modelPath)} · ${new Date(r.createdAt).toLocaleString()}`;
    item.tooltip = `${r.kind} on ${r.modelPath}`;
    item.iconPath = new vscode.ThemeIcon(r.kind === 'trace' ? 'graph' : 'output');
    item.contextValue = 'run';
    item.command = { command: 'mechanist.openRun', title: 'Open Run', arguments: [r.id] };
    return item;
  }

  getChildren(r?: RunSummary): RunSummary[] {
    return r ? [] : this.store.list();
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
  }
}
