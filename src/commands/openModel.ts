/** "Mechanist: Open Model": from the Explorer's context menu, the palette or an opened .onnx. */
import * as vscode from 'vscode';
import { EngineError } from '../engine/client';
import type { LayerExplorer } from '../providers/layerExplorer';
import type { ModelStore } from '../modelStore';
import type { OpenedModel } from '../engine/protocol';

/** Opens a model and shows it in the Layer Explorer; errors become one-line messages. */
export async function openModel(store: ModelStore, explorer: LayerExplorer, uri?: vscode.Uri): Promise<OpenedModel | undefined> {
  if (!(uri instanceof vscode.Uri)) {
    const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'ONNX models': ['onnx'] }, openLabel: 'Open Model' });
    uri = picked?.[0];
    if (!uri) return undefined;
  }
  try {
    const model = await store.open(uri);
    if (model) {
      for (const n of model.notices) if (model.family === 'unknown') void vscode.window.showWarningMessage(`Mechanist: ${n}`);
      await vscode.commands.executeCommand(`${explorerViewCommand}`);
      const root = explorer.getChildren().find((r) => r.model.id === model.id);
      if (root) await explorer.reveal(root).catch(() => undefined);
    }
    return model;
  } catch (e) {
    if (e instanceof EngineError && e.kind === 'cancelled') return undefined;
    void vscode.window.showErrorMessage(`Mechanist: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

/** The built-in command that focuses the Layer Explorer view. */
const explorerViewCommand = 'mechanist.layerExplorer.focus';
