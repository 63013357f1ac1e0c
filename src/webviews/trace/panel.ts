/**
 * The causal-trace panel (host side): serves media/trace, answers the webview's requests
 * (ready, reveal, export) and restores itself after a reload from the stored run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../shared/html';
import { traceCsv } from './protocol';
import type { FromWebview, ToWebview, TraceRequest, TraceResponses, TraceRun, TraceViewState } from './protocol';

/** Reveals a block (and the part a kind restores) in the Layer Explorer. */
export type RevealBlock = (modelPath: string, layer: number, part: 'block' | 'mlp' | 'attention') => Promise<boolean>;

export class TracePanel {
  static readonly viewType = 'mechanist.trace';
  private static readonly open = new Map<string, TracePanel>();

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private run: TraceRun,
    private readonly extensionUri: vscode.Uri,
    private readonly reveal: RevealBlock,
  ) {
    panel.webview.options = webviewOptions(extensionUri);
    panel.webview.html = webviewHtml(panel.webview, extensionUri, 'trace', panel.title);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    panel.webview.onDidReceiveMessage((m: FromWebview) => void this.onMessage(m));
    panel.onDidDispose(() => TracePanel.open.delete(run.id));
    TracePanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: TraceRun, extensionUri: vscode.Uri, reveal: RevealBlock): TracePanel {
    const existing = TracePanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(TracePanel.viewType, title(run), vscode.ViewColumn.Active, webviewOptions(extensionUri));
    return new TracePanel(panel, run, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => TraceRun | undefined, extensionUri: vscode.Uri, reveal: RevealBlock): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(TracePanel.viewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: TraceViewState | undefined) {
        const run = state?.runId ? load(state.runId) : undefined;
        if (!run) {
          panel.webview.html = '<p>This causal-trace run is no longer stored.</p>';
          return;
        }
        panel.title = title(run);
        new TracePanel(panel, run, extensionUri, reveal);
      },
    });
  }

  /** The panels now open (for tests). */
  static panels(): TracePanel[] {
    return [...TracePanel.open.values()];
  }

  get runId(): string {
    return this.run.id;
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

  private async handle(r: TraceRequest): Promise<TraceResponses[TraceRequest['method']]> {
    switch (r.method) {
      case 'ready':
        return this.run;
      case 'reveal': {
        const part = r.kind === 'mlp' ? 'mlp' : r.kind === 'attn' ? 'attention' : 'block';
        return { revealed: await this.reveal(this.run.modelPath, r.layer, part) };
      }
      case 'export':
        return { saved: await this.export(r) };
    }
  }

  private async export(r: Extract<TraceRequest, { method: 'export' }>): Promise<string | undefined> {
    const base = `causal-trace-${this.run.subject.replace(/[^\w-]+/g, '_')}${r.kind ? `-${r.kind}` : ''}`;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(path.dirname(this.run.modelPath));
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.joinPath(folder, `${base}.${r.format}`), filters: { [r.format.toUpperCase()]: [r.format] } });
    if (!target) return undefined;
    let bytes: Uint8Array;
    if (r.format === 'json') bytes = Buffer.from(JSON.stringify(this.run, null, 1));
    else if (r.format === 'csv') bytes = Buffer.from(traceCsv(this.run));
    else {
      const m = /^data:image\/png;base64,(.+)$/.exec(r.pngDataUrl ?? '');
      if (!m) throw new Error('no PNG data');
      bytes = Buffer.from(m[1], 'base64');
    }
    fs.writeFileSync(target.fsPath, bytes);
    return target.fsPath;
  }
}

function title(run: TraceRun): string {
  return `Causal trace: ${run.subject} → ${run.results[0]?.answer.text.trim() ?? '?'}`;
}
