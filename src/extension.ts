/**
 * Composition root: builds the engine client, the model and run stores, the Layer Explorer,
 * the Runs view and the status bar, then registers each feature (commands/<feature>.ts) with
 * the shared services, and every disposable.
 */
import * as vscode from 'vscode';
import * as attention from './commands/attention';
import type { AttentionApi } from './commands/attention';
import * as causalTrace from './commands/causalTrace';
import * as decompose from './commands/decompose';
import * as editConcept from './commands/editConcept';
import type { EditApi } from './commands/editConcept';
import type { DecomposeInputs } from './commands/decompose';
import * as localize from './commands/localize';
import type { LocalizeInputs } from './commands/localize';
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
import { DecomposePanel } from './webviews/decompose/panel';
import type { DecomposeRun } from './webviews/decompose/protocol';
import { LocalizePanel } from './webviews/localize/panel';
import type { EditConceptArgs, LocalizeRun } from './webviews/localize/protocol';
import { TracePanel } from './webviews/trace/panel';
import type { TraceRun } from './webviews/trace/protocol';

/** What the extension exports (used by the integration tests and other extensions). */
export interface MechanistApi extends AttentionApi, EditApi {
  models(): { path: string; family: string; layers: number; heads: number; id: string }[];
  treeSnapshot(): Promise<SnapshotNode[]>;
  /** The selected Layer Explorer node's label, if any. */
  selection(): string | undefined;
  /** Runs a causal trace without prompts (opens the model if needed) and shows it. */
  trace(modelPath: string, inputs: TraceInputs): Promise<TraceRun | undefined>;
  runs(): RunSummary[];
  /** Run ids of the open trace panels. */
  tracePanels(): string[];
  /** Decomposes an image without prompts (opens the model if needed) and shows the panel. */
  decompose(modelPath: string, inputs: DecomposeInputs): Promise<DecomposeRun | undefined>;
  /** Open decomposition panels: run id and the component last highlighted from the Layer Explorer. */
  decomposePanels(): { runId: string; highlighted?: string; loaded: boolean }[];
  /** Runs a cross-attention localization without prompts (opens the model if needed) and shows the panel. */
  localize(modelPath: string, inputs: LocalizeInputs): Promise<LocalizeRun | undefined>;
  /** Open localization panels: run id and whether the webview loaded. */
  localizePanels(): { runId: string; loaded: boolean }[];
  /** What the localization panel's edit button does for a window of an open run's panel. */
  localizeEdit(runId: string, start: number, answers?: EditConceptArgs['answers']): Promise<{ started: boolean; message?: string }>;
  /** Reveals (selects) a block part or head in the Layer Explorer, as a click on a result does. */
  reveal(modelPath: string, layer: number, part?: ExplorerNode['kind'], head?: number): Promise<boolean>;
  engine: EngineClient;
}

function engineSettings(context: vscode.ExtensionContext): EngineSettings {
  const cfg = vscode.workspace.getConfiguration('mechanist');
  const cache = cfg.get<string>('cacheFolder', '');
  return {
    provider: cfg.get('executionProvider', 'auto'),
    threads: cfg.get<number>('threads', 0) || undefined,
    cacheDir: cache || vscode.Uri.joinPath(context.globalStorageUri, 'graphs').fsPath,
    maxBatchRows: cfg.get<number>('maxBatchRows', 64),
  };
}

export function activate(context: vscode.ExtensionContext): MechanistApi {
  const engine = new EngineClient(context.asAbsolutePath('dist/host.js'));
  const configure = (): Promise<unknown> => engine.request('configure', engineSettings(context)).catch(() => undefined);
  // The engine starts on first use; the settings go with the first request.
  let configured: Promise<unknown> | undefined;
  const models = new ModelStore(engine, () => (configured ??= configure()), context.workspaceState);
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
  const decomposeFeature = decompose.register(services);
  const localizeFeature = localize.register(services);
  const attentionFeature = attention.register(services);
  const editFeature = editConcept.register(services);

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
    ...decomposeFeature.disposables,
    ...localizeFeature.disposables,
    ...attentionFeature.disposables,
    ...editFeature.disposables,
  );

  return {
    models: () => models.list().map((m) => ({ id: m.id, path: m.path, family: m.family, layers: m.layers, heads: m.heads })),
    treeSnapshot: async () => explorer.snapshot(),
    selection: () => explorer.view.selection[0]?.label,
    trace: trace.trace,
    runs: () => runs.list(),
    tracePanels: () => TracePanel.panels().map((p) => p.runId),
    decompose: decomposeFeature.decompose,
    decomposePanels: () => DecomposePanel.panels().map((p) => ({ runId: p.runId, highlighted: p.highlighted, loaded: p.loaded })),
    localize: localizeFeature.localize,
    localizePanels: () => LocalizePanel.panels().map((p) => ({ runId: p.runId, loaded: p.loaded })),
    reveal: services.reveal,
    localizeEdit: async (runId, start, answers) => {
      const panel = LocalizePanel.panels().find((p) => p.runId === runId);
      if (!panel) throw new Error(`no open localization panel for run ${runId}`);
      return panel.edit(start, answers);
    },
    engine,
    ...attentionFeature.api,
    ...editFeature.api,
  };
}

export function deactivate(): void {
  // Disposables registered in activate() stop the engine process.
}
