/**
 * The models open in this window: opened through the engine, listed by the Layer Explorer.
 * Their paths are kept in the workspace state, so that after a window reload the Layer
 * Explorer can reopen them (`restore()`, called when it is shown; never on activation).
 */
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { EngineClient } from './engine/client';
import type { OpenedModel } from './engine/protocol';

/** workspaceState key: paths of the open models, in the order they were opened. */
export const OPEN_MODELS_KEY = 'mechanist.openModels';

export class ModelStore implements vscode.Disposable {
  private readonly models: OpenedModel[] = [];
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when a model is opened or closed. */
  readonly onDidChange = this.changed.event;
  /** Persisted paths not reopened yet (kept in the state until their turn comes). */
  private readonly pending = new Set<string>();
  private restoring: Promise<string[]> | undefined;

  constructor(
    private readonly engine: EngineClient,
    /** Resolves once the engine has the user's settings. */
    private readonly ready: () => Promise<unknown> = async () => undefined,
    /** Where the open models' paths are kept (the workspace state); none: nothing is kept. */
    private readonly memento?: vscode.Memento,
  ) {}

  list(): readonly OpenedModel[] {
    return this.models;
  }

  find(path: string): OpenedModel | undefined {
    return this.models.find((m) => m.path === path);
  }

  /** Paths of the models that were open when the state was last written (this window or the one before a reload). */
  persisted(): string[] {
    const v = this.memento?.get<unknown>(OPEN_MODELS_KEY);
    return Array.isArray(v) ? v.filter((p): p is string => typeof p === 'string') : [];
  }

  /** Models that were open before the window reloaded and are not open now. */
  toRestore(): string[] {
    return this.persisted().filter((p) => !this.find(p));
  }

  /**
   * Reopens the models that were open before a reload (once per window; later calls return the
   * first call's promise). Files that are gone, or fail to open, are dropped from the state with
   * a warning. Does nothing, and does not start the engine, when nothing was open. Resolves with
   * the paths reopened.
   */
  restore(): Promise<string[]> {
    this.restoring ??= (async () => {
      const paths = this.toRestore();
      if (!paths.length) return [];
      for (const p of paths) this.pending.add(p);
      const reopened: string[] = [];
      const failed: string[] = [];
      for (const p of paths) {
        try {
          if (!fs.existsSync(p)) failed.push(`${p} no longer exists`);
          else if (await this.open(vscode.Uri.file(p))) reopened.push(p);
        } catch (e) {
          failed.push(`${p}: ${e instanceof Error ? e.message : String(e)}`);
        } finally {
          this.pending.delete(p);
        }
      }
      await this.persist();
      if (failed.length) void vscode.window.showWarningMessage(`Mechanist: could not reopen ${failed.length === 1 ? 'a model' : `${failed.length} models`}: ${failed.join('; ')}`);
      return reopened;
    })();
    return this.restoring;
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
    void this.persist();
    this.changed.fire();
    return model;
  }

  async close(id: string): Promise<void> {
    const i = this.models.findIndex((m) => m.id === id);
    if (i < 0) return;
    this.models.splice(i, 1);
    void this.persist();
    this.changed.fire();
    await this.engine.request('close', { id }).catch(() => undefined);
  }

  /** Writes the open models' paths (and those still waiting to be reopened) to the state. */
  private async persist(): Promise<void> {
    if (!this.memento) return;
    const paths = [...new Set([...this.models.map((m) => m.path), ...this.pending])];
    await Promise.resolve(this.memento.update(OPEN_MODELS_KEY, paths)).catch(() => undefined);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
