/**
 * The localization panel (host side): serves media/localize, answers the webview's requests
 * (ready, reveal, edit, export) and restores itself after a reload from the stored run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../shared/html';
import { localizeCsv, windowOf } from './protocol';
import type { EditConceptArgs, FromWebview, LocalizeRequest, LocalizeResponses, LocalizeRun, LocalizeViewState, ToWebview } from './protocol';

/** Reveals the cross-attention of a decoder block in the Layer Explorer. */
export type RevealCross = (modelPath: string, block: number) => Promise<boolean>;

/** The command of the concept-edit flow (another feature); the panel runs it when it exists. */
export const EDIT_COMMAND = 'mechanist.editConcept';

export class LocalizePanel {
  static readonly viewType = 'mechanist.localize';
  private static readonly open = new Map<string, LocalizePanel>();
  /** Whether the webview has asked for its run (its script loaded and ran). */
  loaded = false;

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly run: LocalizeRun,
    extensionUri: vscode.Uri,
    private readonly reveal: RevealCross,
  ) {
    panel.webview.options = webviewOptions(extensionUri);
    panel.webview.html = webviewHtml(panel.webview, extensionUri, 'localize', panel.title);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    panel.webview.onDidReceiveMessage((m: FromWebview) => void this.onMessage(m));
    panel.onDidDispose(() => LocalizePanel.open.delete(run.id));
    LocalizePanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: LocalizeRun, extensionUri: vscode.Uri, reveal: RevealCross): LocalizePanel {
    const existing = LocalizePanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(LocalizePanel.viewType, title(run), vscode.ViewColumn.Active, webviewOptions(extensionUri));
    return new LocalizePanel(panel, run, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => LocalizeRun | undefined, extensionUri: vscode.Uri, reveal: RevealCross): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(LocalizePanel.viewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: LocalizeViewState | undefined) {
        const run = state?.runId ? load(state.runId) : undefined;
        if (!run) {
          panel.webview.html = '<p>This localization run is no longer stored.</p>';
          return;
        }
        panel.title = title(run);
        new LocalizePanel(panel, run, extensionUri, reveal);
      },
    });
  }

  /** The panels now open (for tests). */
  static panels(): LocalizePanel[] {
    return [...LocalizePanel.open.values()];
  }

  get runId(): string {
    return this.run.id;
  }

  /** What the edit button passes to `mechanist.editConcept` for the window at `start`. */
  editArgs(start: number): EditConceptArgs {
    const w = windowOf(this.run.result, start);
    return { modelPath: this.run.modelPath, layers: w.layers, projections: ['k', 'v'], modules: w.modules, blocks: w.blocks, encoderPath: this.run.encoderPath, prompt: this.run.prompt, targetPrompt: this.run.targetPrompt };
  }

  /** Runs the edit flow on a window (what the panel's button does). */
  async edit(start: number): Promise<{ started: boolean; message?: string }> {
    const commands = await vscode.commands.getCommands(true);
    if (!commands.includes(EDIT_COMMAND)) {
      const message = 'Mechanist: the concept edit command (mechanist.editConcept) is not available in this version.';
      void vscode.window.showInformationMessage(message);
      return { started: false, message };
    }
    await vscode.commands.executeCommand(EDIT_COMMAND, this.editArgs(start));
    return { started: true };
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

  private async handle(r: LocalizeRequest): Promise<LocalizeResponses[LocalizeRequest['method']]> {
    switch (r.method) {
      case 'ready':
        this.loaded = true;
        return this.run;
      case 'reveal': {
        const block = this.run.result.blocks[r.start];
        return { revealed: block === undefined ? false : await this.reveal(this.run.modelPath, block) };
      }
      case 'edit':
        return this.edit(r.start);
      case 'export':
        return { saved: await this.export(r) };
    }
  }

  private async export(r: Extract<LocalizeRequest, { method: 'export' }>): Promise<string | undefined> {
    const base = `localization-${path.basename(this.run.modelPath, '.onnx').replace(/[^\w-]+/g, '_')}`;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(path.dirname(this.run.modelPath));
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.joinPath(folder, `${base}.${r.format}`), filters: { [r.format.toUpperCase()]: [r.format] } });
    if (!target) return undefined;
    let bytes: Uint8Array;
    if (r.format === 'json') bytes = Buffer.from(JSON.stringify(this.run, null, 1));
    else if (r.format === 'csv') bytes = Buffer.from(localizeCsv(this.run));
    else {
      const m = /^data:image\/png;base64,(.+)$/.exec(r.pngDataUrl ?? '');
      if (!m) throw new Error('no PNG data');
      bytes = Buffer.from(m[1], 'base64');
    }
    fs.writeFileSync(target.fsPath, bytes);
    return target.fsPath;
  }
}

function title(run: LocalizeRun): string {
  return `Localization: ${run.prompt} → ${run.targetPrompt}`;
}
