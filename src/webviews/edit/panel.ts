/**
 * The concept-edit panel (host side): serves media/edit, answers the webview's requests (ready,
 * open, discard, save as, reveal, export) through the feature's EditHost and restores itself
 * after a reload from the stored run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../shared/html';
import type { EditFileState, EditRequest, EditResponses, EditRun, EditView, EditViewState, FromWebview, ToWebview } from './protocol';

/** What the panel's buttons do (commands/editConcept.ts implements them). */
export interface EditHost {
  /** Where the run's edited model is now. */
  file(run: EditRun): EditFileState;
  /** Opens the edited model in the Layer Explorer. */
  open(run: EditRun): Promise<boolean>;
  /** Deletes the edited model's files after a modal confirmation. */
  discard(run: EditRun): Promise<boolean>;
  /** Moves the edited model to a file the user picks; its new path, or undefined. */
  saveAs(run: EditRun): Promise<string | undefined>;
  /** Reveals the edited block in the original model's tree. */
  reveal(run: EditRun): Promise<boolean>;
}

export class EditPanel {
  static readonly viewType = 'mechanist.edit';
  private static readonly open = new Map<string, EditPanel>();
  /** Whether the webview has asked for its run (its script loaded and ran). */
  loaded = false;

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly run: EditRun,
    extensionUri: vscode.Uri,
    private readonly host: EditHost,
  ) {
    panel.webview.options = webviewOptions(extensionUri);
    panel.webview.html = webviewHtml(panel.webview, extensionUri, 'edit', panel.title);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    panel.webview.onDidReceiveMessage((m: FromWebview) => void this.onMessage(m));
    panel.onDidDispose(() => EditPanel.open.delete(run.id));
    EditPanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: EditRun, extensionUri: vscode.Uri, host: EditHost): EditPanel {
    const existing = EditPanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(EditPanel.viewType, title(run), vscode.ViewColumn.Active, webviewOptions(extensionUri));
    return new EditPanel(panel, run, extensionUri, host);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => EditRun | undefined, extensionUri: vscode.Uri, host: EditHost): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(EditPanel.viewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: EditViewState | undefined) {
        const run = state?.runId ? load(state.runId) : undefined;
        if (!run) {
          panel.webview.html = '<p>This concept-edit run is no longer stored.</p>';
          return;
        }
        panel.title = title(run);
        new EditPanel(panel, run, extensionUri, host);
      },
    });
  }

  /** The panels now open (for tests). */
  static panels(): EditPanel[] {
    return [...EditPanel.open.values()];
  }

  /** Re-sends the file state to every open panel of a run (after a move or a discard). */
  static refresh(runId: string): void {
    EditPanel.open.get(runId)?.update();
  }

  get runId(): string {
    return this.run.id;
  }

  private view(): EditView {
    return { run: this.run, file: this.host.file(this.run) };
  }

  private update(): void {
    this.post({ type: 'update', view: this.view() });
  }

  private post(m: ToWebview): void {
    void this.panel.webview.postMessage(m);
  }

  private async onMessage(m: FromWebview): Promise<void> {
    if (m?.type !== 'request') return;
    try {
      const result = await this.handle(m.request);
      this.post({ type: 'response', id: m.id, result });
    } catch (e) {
      this.post({ type: 'response', id: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  }

  private async handle(r: EditRequest): Promise<EditResponses[EditRequest['method']]> {
    switch (r.method) {
      case 'ready':
        this.loaded = true;
        return this.view();
      case 'open':
        return { opened: await this.host.open(this.run) };
      case 'discard':
        return { discarded: await this.host.discard(this.run) };
      case 'saveAs':
        return { saved: await this.host.saveAs(this.run) };
      case 'reveal':
        return { revealed: await this.host.reveal(this.run) };
      case 'export':
        return { saved: await this.export() };
    }
  }

  private async export(): Promise<string | undefined> {
    const r = this.run.result;
    const base = `concept-edit-${`${r.source}-to-${r.target}`.replace(/[^\w-]+/g, '_')}`;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(path.dirname(this.run.modelPath));
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.joinPath(folder, `${base}.json`), filters: { JSON: ['json'] } });
    if (!target) return undefined;
    fs.writeFileSync(target.fsPath, JSON.stringify({ ...this.run, file: this.host.file(this.run) }, null, 1));
    return target.fsPath;
  }
}

function title(run: EditRun): string {
  return `Concept edit: ${run.result.source} → ${run.result.target}`;
}
