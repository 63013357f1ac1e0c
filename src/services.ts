/**
 * What the composition root hands to each feature: the engine, the stores, the Layer
 * Explorer and shared helpers. A feature (commands/<feature>.ts) exports
 * `register(services): vscode.Disposable[]` and extension.ts calls it, one line each.
 */
import type * as vscode from 'vscode';
import type { EngineClient } from './engine/client';
import type { OpenedModel } from './engine/protocol';
import type { ModelStore } from './modelStore';
import type { LayerExplorer } from './providers/layerExplorer';
import type { ExplorerNode } from './providers/explorerNodes';
import type { ProviderStatus } from './providers/providerStatus';
import type { RunStore } from './runStore';

/** Reveals a block (or a part of it) of a model in the Layer Explorer, opening the model if needed. */
export type RevealBlock = (modelPath: string, layer: number, part?: ExplorerNode['kind'], head?: number) => Promise<boolean>;

export interface Services {
  context: vscode.ExtensionContext;
  engine: EngineClient;
  models: ModelStore;
  runs: RunStore;
  explorer: LayerExplorer;
  status: ProviderStatus;
  /** Opens a model (asks for a file when no URI). */
  open(uri?: vscode.Uri): Promise<OpenedModel | undefined>;
  reveal: RevealBlock;
}
