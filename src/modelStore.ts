/** The models open in this window: opened through the engine, listed by the Layer Explorer. */
import * as vscode from 'vscode';
import type { EngineClient } from './engine/client';
import type { OpenedModel } from './engine/protocol';

export class ModelStore implements vscode.Disposable {
  private readonly models: OpenedModel[] = [];
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when a model is opened or closed. */
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly engine: EngineClient,
    /** Resolves once the engine has the user's settings. */
    private readonly ready: () => Promise<unknown> = async () => undefined,
  ) {}

  list(): readonly OpenedModel[] {
    return this.models;
  }

  find(path: string): OpenedModel | undefined {
    return this.models.find((m) => m.path === path);
  }

  /** Opens a model (or returns it when already open), with a cancellable progress notification. */
  async open(uri: vscode.Uri): Promise<OpenedModel | undefined> {
    const existing = this.find(uri.fsPath);
    if (existing) return existing;
    const name = uri.path.split('/').pop();
    await this.ready();
    const model = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Mechanist: opening ${name}`, cancellable: true },
      (progress, token) => this.engine.request('open', { path: uri.fsPath }, { cancel: token, onProgress: (p) => progress.report({ message: p.message }) }),
    );
    if (this.find(model.path)) return this.find(model.path);
    this.models.push(model);
    this.changed.fire();
    return model;
  }

  async close(id: string): Promise<void> {
    const i = this.models.findIndex((m) => m.id === id);
    if (i < 0) return;
    this.models.splice(i, 1);
    this.changed.fire();
    await this.engine.request('close', { id }).catch(() => undefined);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
