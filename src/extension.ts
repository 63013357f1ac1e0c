/**
 * Composition root: builds the engine client, the model and run stores, the Layer Explorer,
 * the Runs view and the status bar, then registers each feature (commands/<feature>.ts) with
 * the shared services, and every disposable.
 */
import * as vscode from 'vscode';
import * as attention from './commands/attention';
import type { AttentionApi } from './commands/attention';
import * as causalTrace from './commands/causalTrace';
import type { TraceInputs } from './commands/causalTrace';
import { openModel } from './commands/openModel';
import { revealInGraph } from './commands/revealInGraph';
import { EngineClient } from './engine/client';
import type { EngineSettings } from './engine/protocol';
import { ModelStore } from './modelStore';
import type { ExplorerNode } from './providers/explorerNodes';
import { LayerExplorer } from './providers/layerExplorer';
import type { SnapshotNode } from './providers/layerExplorer';
import { ProviderStatus } from './providers/providerStatus';
import { RunsView } from './providers/runsView';
import { RunStore } from './runStore';
import type { RunSummary } from './runStore';
import type { Services } from './services';
import { ModelEditorProvider } from './webviews/modelSummary/panel';
import { TracePanel } from './webviews/trace/panel';
import type { TraceRun } from './webviews/trace/protocol';

/** What the extension exports (used by the integration tests and other extensions). */
export interface MechanistApi extends AttentionApi {
  models(): { path: string; family: string; layers: number; heads: number; id: string }[];
  treeSnapshot(): Promise<SnapshotNode[]>;
  /** The selected Layer Explorer node's label, if any. */
  selection(): string | undefined;
  /** Runs a causal trace without prompts (opens the model if needed) and shows it. */
  trace(modelPath: string, inputs: TraceInputs): Promise<TraceRun | undefined>;
  runs(): RunSummary[];
  /** Run ids of the open trace panels. */
  tracePanels(): string[];
  engine: EngineClient;
}

function engineSettings(context: vscode.ExtensionContext): EngineSettings {
  const cfg = vscode.workspace.getConfiguration('mechanist');
  const cache = cfg.get<string>('cacheFolder', '');
  return {
    provider: cfg.get('executionProvider', 'auto'),
    threads: cfg.get<number>('threads', 0) || undefined,
    cacheDir: cache || vscode.Uri.joinPath(context.globalStorageUri, 'graphs').fsPath,
    maxBatchRows: cfg.get<number>('maxBatchRows', 256),
  };
}

export function activate(context: vscode.ExtensionContext): MechanistApi {
  const engine = new EngineClient(context.asAbsolutePath('dist/host.js'));
  const configure = (): Promise<unknown> => engine.request('configure', engineSettings(context)).catch(() => undefined);
  // The engine starts on first use; the settings go with the first request.
  let configured: Promise<unknown> | undefined;
  const models = new ModelStore(engine, () => (configured ??= configure()));
  const runs = new RunStore(context.globalStorageUri);
  const explorer = LayerExplorer.register(models);
  const status = ProviderStatus.register(engine);
  const open = (uri?: vscode.Uri) => openModel(models, explorer, uri);
  const services: Services = {
    context,
    engine,
    models,
    runs,
    explorer,
    status,
    open,
    reveal: async (modelPath, layer, part, head) => {
      if (!models.find(modelPath)) await open(vscode.Uri.file(modelPath));
      const node = explorer.findBlock(modelPath, layer, part, head);
      if (!node) return false;
      await explorer.reveal(node);
      return true;
    },
  };
  const trace = causalTrace.register(services);
  const attentionFeature = attention.register(services);

  context.subscriptions.push(
    { dispose: () => engine.dispose() },
    models,
    runs,
    explorer,
    status,
    models.onDidChange(() => void status.refresh()),
    RunsView.register(runs),
    ModelEditorProvider.register(open),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('mechanist') && engine.started) configured = configure().then(() => status.refresh());
    }),
    vscode.commands.registerCommand('mechanist.openModel', open),
    vscode.commands.registerCommand('mechanist.closeModel', (node?: ExplorerNode) => node && models.close(node.model.id)),
    vscode.commands.registerCommand('mechanist.revealInGraph', (node?: ExplorerNode) => revealInGraph(engine, node ?? explorer.view.selection[0])),
    vscode.commands.registerCommand('mechanist.openRun', (id?: string | RunSummary) => {
      if (!runs.open(typeof id === 'string' ? id : (id?.id ?? ''))) void vscode.window.showWarningMessage('Mechanist: that run is no longer stored.');
    }),
    vscode.commands.registerCommand('mechanist.deleteRun', (r?: RunSummary) => r && runs.delete(r.id)),
    ...trace.disposables,
    ...attentionFeature.disposables,
  );

  return {
    models: () => models.list().map((m) => ({ id: m.id, path: m.path, family: m.family, layers: m.layers, heads: m.heads })),
    treeSnapshot: async () => explorer.snapshot(),
    selection: () => explorer.view.selection[0]?.label,
    trace: trace.trace,
    runs: () => runs.list(),
    tracePanels: () => TracePanel.panels().map((p) => p.runId),
    engine,
    ...attentionFeature.api,
  };
}

export function deactivate(): void {
  // Disposables registered in activate() stop the engine process.
}
