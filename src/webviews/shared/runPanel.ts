/**
 * What every result panel's host side shares: the page with its CSP, the request/response loop
 * (the webview's `ready` marks it loaded), saving exports, and restoring after a reload. Each
 * panel (webviews/<panel>/panel.ts) adds its requests, its registry of open panels and `show`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from './html';
import type { RequestEnvelope, ResponseEnvelope } from './rpc';

export abstract class RunPanel<Req extends { method: string }, Push extends { type: string }> {
  /** Whether the webview has asked for its run (its script loaded and ran). */
  loaded = false;

  protected constructor(
    readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    /** The front-end bundle: dist/media/<media>.js. */
    media: string,
    onDispose: () => void,
  ) {
    panel.webview.options = webviewOptions(extensionUri);
    panel.webview.html = webviewHtml(panel.webview, extensionUri, media, panel.title);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    panel.webview.onDidReceiveMessage((m: RequestEnvelope<Req>) => void this.onMessage(m));
    panel.onDidDispose(onDispose);
  }

  /** The stored run this panel shows. */
  abstract get runId(): string;

  /** Answers one request of the webview. */
  protected abstract handle(r: Req): Promise<unknown>;

  protected post(m: Push | ResponseEnvelope): void {
    void this.panel.webview.postMessage(m);
  }

  private async onMessage(m: RequestEnvelope<Req>): Promise<void> {
    if (m?.type !== 'request') return;
    if (m.request.method === 'ready') this.loaded = true;
    try {
      this.post({ type: 'response', id: m.id, result: await this.handle(m.request) });
    } catch (e) {
      this.post({ type: 'response', id: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  }
}

/**
 * Asks where to save an export (in the workspace, else beside the model) and writes it: `text()`
 * for JSON and CSV, the PNG data URL the webview drew for PNG. The saved path, or undefined
 * when the user cancels.
 */
export async function saveExport(modelPath: string, base: string, format: 'json' | 'csv' | 'png', text: () => string, pngDataUrl?: string): Promise<string | undefined> {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(path.dirname(modelPath));
  const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.joinPath(folder, `${base}.${format}`), filters: { [format.toUpperCase()]: [format] } });
  if (!target) return undefined;
  let bytes: Uint8Array;
  if (format !== 'png') bytes = Buffer.from(text());
  else {
    const m = /^data:image\/png;base64,(.+)$/.exec(pngDataUrl ?? '');
    if (!m) throw new Error('no PNG data');
    bytes = Buffer.from(m[1], 'base64');
  }
  fs.writeFileSync(target.fsPath, bytes);
  return target.fsPath;
}

/** A file-name-safe form of a label. */
export function fileSafe(s: string): string {
  return s.replace(/[^\w-]+/g, '_');
}

/**
 * Restores panels of `viewType` after a window reload: `load` finds the stored run of the
 * persisted state; `create` makes the panel around the restored webview.
 */
export function registerRestorer<State extends { runId?: string }, Run>(
  viewType: string,
  what: string,
  load: (runId: string) => Run | undefined,
  create: (panel: vscode.WebviewPanel, run: Run, state: State) => void,
): vscode.Disposable {
  return vscode.window.registerWebviewPanelSerializer(viewType, {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: State | undefined) {
      const run = state?.runId ? load(state.runId) : undefined;
      if (!run) {
        panel.webview.html = `<p>This ${what} run is no longer stored.</p>`;
        return;
      }
      create(panel, run, state!);
    },
  });
}

/** A new webview panel with the options every result panel uses. */
export function createPanel(viewType: string, title: string, extensionUri: vscode.Uri, show: vscode.ViewColumn | { viewColumn: vscode.ViewColumn; preserveFocus?: boolean } = vscode.ViewColumn.Active): vscode.WebviewPanel {
  return vscode.window.createWebviewPanel(viewType, title, show, webviewOptions(extensionUri));
}
