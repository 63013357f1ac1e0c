/**
 * Composition root: builds the engine client, the model and run stores, the Layer Explorer,
 * the Runs view, the .onnx editor, the panels and the commands, and registers every disposable.
 */
import * as vscode from 'vscode';
import { askTraceInputs, runTrace } from './commands/causalTrace';
import type { TraceInputs } from './commands/causalTrace';
import { openModel } from './commands/openModel';
import { pickModel, requireTrust } from './commands/pickModel';
import { revealInGraph } from './commands/revealInGraph';
import { EngineClient } from './engine/client';
import type { EngineSettings, OpenedModel } from './engine/protocol';
import { ModelStore } from './modelStore';
import type { ExplorerNode } from './providers/explorerNodes';
import { LayerExplorer } from './providers/layerExplorer';
import type { SnapshotNode } from './providers/layerExplorer';
import { ProviderStatus } from './providers/providerStatus';
import { RunsView } from './providers/runsView';
import { RunStore } from './runStore';
import type { RunSummary } from './runStore';
import { ModelEditorProvider } from './webviews/modelSummary/panel';
import { TracePanel } from './webviews/trace/panel';
import type { RevealBlock } from './webviews/trace/panel';
import type { TraceRun } from './webviews/trace/protocol';

/** What the extension exports (used by the integration tests and other extensions). */
export interface MechanistApi {
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
  // Settings travel with the first request only once the engine is needed (it starts lazily).
  let configured: Promise<unknown> | undefined;
  const ready = (): Promise<unknown> => (configured ??= configure());
  const store = new ModelStore(engine, ready);
  const runs = new RunStore(context.globalStorageUri);
  const explorer = LayerExplorer.register(store);
  const status = ProviderStatus.register(engine);
  const open = (uri?: vscode.Uri): Promise<OpenedModel | undefined> => openModel(store, explorer, uri);

  const reveal: RevealBlock = async (modelPath, layer, part) => {
    if (!store.find(modelPath)) await open(vscode.Uri.file(modelPath));
    const node = explorer.findBlock(modelPath, layer, part === 'block' ? undefined : part);
    if (!node) return false;
    await explorer.reveal(node);
    return true;
  };
  const showRun = (run: TraceRun): void => void TracePanel.show(run, context.extensionUri, reveal);

  const trace = async (arg?: unknown): Promise<TraceRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const model = await pickModel(store, open, arg);
    if (!model) return undefined;
    const inputs = await askTraceInputs(engine, model).catch((e: Error) => void vscode.window.showErrorMessage(`Mechanist: ${e.message}`));
    if (!inputs) return undefined;
    const run = await runTrace(engine, runs, model, inputs);
    if (run) showRun(run);
    void status.refresh();
    return run;
  };

  context.subscriptions.push(
    { dispose: () => engine.dispose() },
    store,
    runs,
    explorer,
    status,
    store.onDidChange(() => void status.refresh()),
    RunsView.register(runs),
    ModelEditorProvider.register(open),
    TracePanel.registerSerializer(runs, context.extensionUri, reveal),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('mechanist') && engine.started) configured = configure().then(() => status.refresh());
    }),
    vscode.commands.registerCommand('mechanist.openModel', open),
    vscode.commands.registerCommand('mechanist.closeModel', (node?: ExplorerNode) => node && store.close(node.model.id)),
    vscode.commands.registerCommand('mechanist.revealInGraph', (node?: ExplorerNode) => revealInGraph(engine, node ?? explorer.view.selection[0])),
    vscode.commands.registerCommand('mechanist.causalTrace', trace),
    vscode.commands.registerCommand('mechanist.openRun', (id?: string | RunSummary) => {
      const run = runs.get(typeof id === 'string' ? id : (id?.id ?? ''));
      if (run) showRun(run);
      else void vscode.window.showWarningMessage('Mechanist: that run is no longer stored.');
    }),
    vscode.commands.registerCommand('mechanist.deleteRun', (r?: RunSummary) => r && runs.delete(r.id)),
  );

  return {
    models: () => store.list().map((m) => ({ id: m.id, path: m.path, family: m.family, layers: m.layers, heads: m.heads })),
    treeSnapshot: async () => explorer.snapshot(),
    selection: () => explorer.view.selection[0]?.label,
    trace: async (modelPath, inputs) => {
      const model = store.find(modelPath) ?? (await open(vscode.Uri.file(modelPath)));
      if (!model) return undefined;
      const run = await runTrace(engine, runs, model, inputs);
      if (run) showRun(run);
      void status.refresh();
      return run;
    },
    runs: () => runs.list(),
    tracePanels: () => TracePanel.panels().map((p) => p.runId),
    engine,
  };
}

export function deactivate(): void {
  // Disposables registered in activate() stop the engine process.
}
