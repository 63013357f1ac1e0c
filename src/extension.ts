/**
 * Composition root: builds the engine client, the model store, the Layer Explorer, the
 * .onnx editor and the commands, and registers every disposable.
 */
import * as vscode from 'vscode';
import { openModel } from './commands/openModel';
import { revealInGraph } from './commands/revealInGraph';
import { EngineClient } from './engine/client';
import type { OpenedModel } from './engine/protocol';
import { ModelStore } from './modelStore';
import type { ExplorerNode } from './providers/explorerNodes';
import { LayerExplorer } from './providers/layerExplorer';
import type { SnapshotNode } from './providers/layerExplorer';
import { ModelEditorProvider } from './webviews/modelSummary/panel';

/** What the extension exports (used by the integration tests and other extensions). */
export interface MechanistApi {
  models(): { path: string; family: string; layers: number; heads: number; id: string }[];
  treeSnapshot(): Promise<SnapshotNode[]>;
  engine: EngineClient;
}

export function activate(context: vscode.ExtensionContext): MechanistApi {
  const engine = new EngineClient(context.asAbsolutePath('dist/host.js'));
  const store = new ModelStore(engine);
  const explorer = LayerExplorer.register(store);
  const open = (uri?: vscode.Uri): Promise<OpenedModel | undefined> => openModel(store, explorer, uri);

  context.subscriptions.push(
    { dispose: () => engine.dispose() },
    store,
    explorer,
    ModelEditorProvider.register(open),
    vscode.commands.registerCommand('mechanist.openModel', open),
    vscode.commands.registerCommand('mechanist.closeModel', (node?: ExplorerNode) => node && store.close(node.model.id)),
    vscode.commands.registerCommand('mechanist.revealInGraph', (node?: ExplorerNode) => revealInGraph(engine, node ?? explorer.view.selection[0])),
  );

  return {
    models: () => store.list().map((m) => ({ id: m.id, path: m.path, family: m.family, layers: m.layers, heads: m.heads })),
    treeSnapshot: async () => explorer.snapshot(),
    engine,
  };
}

export function deactivate(): void {
  // Disposables registered in activate() stop the engine process.
}
