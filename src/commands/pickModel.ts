/** Which model a command acts on: the node it was invoked on, a .onnx file, the only open model, or the user's pick. */
import * as vscode from 'vscode';
import type { OpenedModel } from '../engine/protocol';
import type { ModelStore } from '../modelStore';
import { ExplorerNode } from '../providers/explorerNodes';

export async function pickModel(store: ModelStore, open: (uri?: vscode.Uri) => Promise<OpenedModel | undefined>, arg?: unknown): Promise<OpenedModel | undefined> {
  if (arg instanceof ExplorerNode) return arg.model;
  if (arg instanceof vscode.Uri) return store.find(arg.fsPath) ?? open(arg);
  const models = store.list();
  if (models.length === 1) return models[0];
  if (models.length === 0) return open();
  const pick = await vscode.window.showQuickPick(
    models.map((m) => ({ label: m.path.split(/[\\/]/).pop()!, description: `${m.family} · ${m.layers} layers`, detail: m.path, model: m })),
    { title: 'Mechanist: which model?' },
  );
  return pick?.model;
}

/** Models compute only in trusted workspaces (native code runs on the file); browsing is fine anywhere. */
export async function requireTrust(): Promise<boolean> {
  if (vscode.workspace.isTrusted) return true;
  const choice = await vscode.window.showWarningMessage('Mechanist runs models (native code on the model file) only in a trusted workspace. Browsing layers works without trust.', 'Manage Workspace Trust');
  if (choice) await vscode.commands.executeCommand('workbench.trust.manage');
  return false;
}
