/**
 * The decomposition panel (host side): serves media/decompose, answers the webview's requests
 * (ready, reveal, export), forwards Layer Explorer selections as `highlight`, and restores
 * itself after a reload from the stored run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../shared/html';
import { componentTarget, decomposeCsv } from './protocol';
import type { DecomposeRequest, DecomposeResponses, DecomposeRun, DecomposeViewState, FromWebview, ToWebview } from './protocol';

/** Reveals a block part (or a head) of a model in the Layer Explorer. */
export type RevealPart = (modelPath: string, layer: number, part: 'attention' | 'mlp', head?: number) => Promise<boolean>;

export class DecomposePanel {
  static readonly viewType = 'mechanist.decompose';
  private static readonly open = new Map<string, DecomposePanel>();
  /** The component last highlighted from the Layer Explorer (for tests). */
  highlighted?: string;
  /** Whether the webview has asked for its run (its script loaded and ran). */
  loaded = false;

  private constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly run: DecomposeRun,
    extensionUri: vscode.Uri,
    private readonly reveal: RevealPart,
  ) {
    panel.webview.options = webviewOptions(extensionUri);
    panel.webview.html = webviewHtml(panel.webview, extensionUri, 'decompose', panel.title);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    panel.webview.onDidReceiveMessage((m: FromWebview) => void this.onMessage(m));
    panel.onDidDispose(() => DecomposePanel.open.delete(run.id));
    DecomposePanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: DecomposeRun, extensionUri: vscode.Uri, reveal: RevealPart): DecomposePanel {
    const existing = DecomposePanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(DecomposePanel.viewType, title(run), vscode.ViewColumn.Active, webviewOptions(extensionUri));
    return new DecomposePanel(panel, run, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => DecomposeRun | undefined, extensionUri: vscode.Uri, reveal: RevealPart): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(DecomposePanel.viewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: DecomposeViewState | undefined) {
        const run = state?.runId ? load(state.runId) : undefined;
        if (!run) {
          panel.webview.html = '<p>This decomposition run is no longer stored.</p>';
          return;
        }
        panel.title = title(run);
        new DecomposePanel(panel, run, extensionUri, reveal);
      },
    });
  }

  /** The panels now open (for tests). */
  static panels(): DecomposePanel[] {
    return [...DecomposePanel.open.values()];
  }

  /** Tells every open panel of `modelPath` to select `component` (a Layer Explorer selection). */
  static highlight(modelPath: string, component: string): number {
    let n = 0;
    for (const p of DecomposePanel.open.values()) {
      if (p.run.modelPath !== modelPath) continue;
      p.highlighted = component;
      p.post({ type: 'highlight', component });
      n++;
    }
    return n;
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

  private async handle(r: DecomposeRequest): Promise<DecomposeResponses[DecomposeRequest['method']]> {
    switch (r.method) {
      case 'ready':
        this.loaded = true;
        return this.run;
      case 'reveal': {
        const c = this.run.components.find((x) => x.name === r.component);
        const t = c && componentTarget(c);
        return { revealed: t ? await this.reveal(this.run.modelPath, t.layer, t.part, t.head) : false };
      }
      case 'export':
        return { saved: await this.export(r) };
    }
  }

  private async export(r: Extract<DecomposeRequest, { method: 'export' }>): Promise<string | undefined> {
    const base = `decomposition-${path.basename(this.run.image).replace(/\.[^.]+$/, '').replace(/[^\w-]+/g, '_')}${r.what ? `-${r.what.replace(/[^\w.-]+/g, '_')}` : ''}`;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(path.dirname(this.run.modelPath));
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.joinPath(folder, `${base}.${r.format}`), filters: { [r.format.toUpperCase()]: [r.format] } });
    if (!target) return undefined;
    let bytes: Uint8Array;
    if (r.format === 'json') bytes = Buffer.from(JSON.stringify(this.run, null, 1));
    else if (r.format === 'csv') bytes = Buffer.from(decomposeCsv(this.run));
    else {
      const m = /^data:image\/png;base64,(.+)$/.exec(r.pngDataUrl ?? '');
      if (!m) throw new Error('no PNG data');
      bytes = Buffer.from(m[1], 'base64');
    }
    fs.writeFileSync(target.fsPath, bytes);
    return target.fsPath;
  }
}

function title(run: DecomposeRun): string {
  return `Decomposition: ${path.basename(run.image)}${run.feature ? ` · ${run.feature}` : ''}`;
}
