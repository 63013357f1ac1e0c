/**
 * The attention-analysis panel (host side): serves media/attention for runs of patterns,
 * knockout, contributions and the logit lens; answers the webview's requests (ready, reveal,
 * export) and restores itself after a reload from the stored run. Head clicks reuse the
 * model's open patterns panel instead of opening a tab per head.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../shared/html';
import { attentionCsv, runTitle } from './protocol';
import type { AttentionRequest, AttentionResponses, AttentionRun, AttentionViewState, Focus, FromWebview, ToWebview } from './protocol';

/** Reveals a block (its attention, one head; or the block itself) in the Layer Explorer. */
export type RevealHead = (modelPath: string, layer: number, head?: number, part?: 'block' | 'attention') => Promise<boolean>;

export class AttentionPanel {
  static readonly viewType = 'mechanist.attention';
  private static readonly open = new Set<AttentionPanel>();

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private run: AttentionRun,
    private focus: Focus | undefined,
    extensionUri: vscode.Uri,
    private readonly reveal: RevealHead,
  ) {
    panel.webview.options = webviewOptions(extensionUri);
    panel.webview.html = webviewHtml(panel.webview, extensionUri, 'attention', panel.title);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    panel.webview.onDidReceiveMessage((m: FromWebview) => void this.onMessage(m));
    panel.onDidDispose(() => AttentionPanel.open.delete(this));
    AttentionPanel.open.add(this);
  }

  /**
   * Shows a run: its open panel (focused on `focus`), else for a patterns run with `reuse` the
   * model's open patterns panel (switched to this run), else a new panel.
   */
  static show(run: AttentionRun, extensionUri: vscode.Uri, reveal: RevealHead, focus?: Focus, reuse = false): AttentionPanel {
    const panels = [...AttentionPanel.open];
    const existing =
      panels.find((p) => p.run.id === run.id) ?? (reuse && run.kind === 'patterns' ? panels.find((p) => p.run.kind === 'patterns' && p.run.modelPath === run.modelPath) : undefined);
    if (existing) {
      existing.run = run;
      existing.focus = focus;
      existing.panel.title = runTitle(run, focus);
      existing.post({ type: 'update', run, focus });
      existing.panel.reveal(undefined, reuse);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(AttentionPanel.viewType, runTitle(run, focus), { viewColumn: vscode.ViewColumn.Active, preserveFocus: reuse }, webviewOptions(extensionUri));
    return new AttentionPanel(panel, run, focus, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => AttentionRun | undefined, extensionUri: vscode.Uri, reveal: RevealHead): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(AttentionPanel.viewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: AttentionViewState | undefined) {
        const run = state?.runId ? load(state.runId) : undefined;
        if (!run) {
          panel.webview.html = '<p>This run is no longer stored.</p>';
          return;
        }
        // The webview restores its own UI state (head, cell, view) from getState().
        const focus: Focus | undefined = run.kind === 'patterns' && state?.head !== undefined ? { head: state.head } : undefined;
        panel.title = runTitle(run, focus);
        new AttentionPanel(panel, run, focus, extensionUri, reveal);
      },
    });
  }

  /** The panels now open (for tests). */
  static panels(): AttentionPanel[] {
    return [...AttentionPanel.open];
  }

  get runId(): string {
    return this.run.id;
  }

  get kind(): AttentionRun['kind'] {
    return this.run.kind;
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

  private async handle(r: AttentionRequest): Promise<AttentionResponses[AttentionRequest['method']]> {
    switch (r.method) {
      case 'ready':
        return { run: this.run, focus: this.focus };
      case 'reveal':
        return { revealed: await this.reveal(this.run.modelPath, r.layer, r.head, r.part) };
      case 'export':
        return { saved: await this.export(r) };
    }
  }

  private async export(r: Extract<AttentionRequest, { method: 'export' }>): Promise<string | undefined> {
    const suffix = r.name ? `-${r.name.replace(/[^\w-]+/g, '_')}` : '';
    const base = `${this.run.kind}-${this.run.prompt.slice(0, 40).replace(/[^\w-]+/g, '_').replace(/^_+|_+$/g, '')}${suffix}`;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(path.dirname(this.run.modelPath));
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.joinPath(folder, `${base}.${r.format}`), filters: { [r.format.toUpperCase()]: [r.format] } });
    if (!target) return undefined;
    let bytes: Uint8Array;
    if (r.format === 'json') bytes = Buffer.from(JSON.stringify(this.run, null, 1));
    else if (r.format === 'csv') bytes = Buffer.from(attentionCsv(this.run));
    else {
      const m = /^data:image\/png;base64,(.+)$/.exec(r.pngDataUrl ?? '');
      if (!m) throw new Error('no PNG data');
      bytes = Buffer.from(m[1], 'base64');
    }
    fs.writeFileSync(target.fsPath, bytes);
    return target.fsPath;
  }
}
