/**
 * The editor shown when a .onnx file is opened: a static summary of the model (no script, so
 * no message protocol), while the model itself opens in the Layer Explorer.
 */
import * as vscode from 'vscode';
import type { OpenedModel } from '../../engine/protocol';
import { formatCount } from '../../providers/explorerNodes';

export class ModelEditorProvider implements vscode.CustomReadonlyEditorProvider {
  static readonly viewType = 'mechanist.onnxModel';

  private constructor(private readonly open: (uri: vscode.Uri) => Promise<OpenedModel | undefined>) {}

  static register(open: (uri: vscode.Uri) => Promise<OpenedModel | undefined>): vscode.Disposable {
    return vscode.window.registerCustomEditorProvider(ModelEditorProvider.viewType, new ModelEditorProvider(open), {
      supportsMultipleEditorsPerDocument: true,
    });
  }

  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  async resolveCustomEditor(doc: vscode.CustomDocument, panel: vscode.WebviewPanel): Promise<void> {
    panel.webview.options = { enableScripts: false, localResourceRoots: [] };
    panel.webview.html = page(panel.webview, `<p>Opening ${escape(doc.uri.fsPath)}…</p>`);
    const model = await this.open(doc.uri);
    panel.webview.html = page(panel.webview, model ? summary(model) : `<p>This file could not be opened as a model; see the notification for the reason.</p>`);
  }
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(webview: vscode.Webview, body: string): string {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource} 'unsafe-inline';">
<style>
body { font-family: var(--vscode-font-family); color: var(--vscode-foreground); background: var(--vscode-editor-background); padding: 1em 2em; }
table { border-collapse: collapse; } td, th { text-align: left; padding: 2px 12px 2px 0; border-bottom: 1px solid var(--vscode-panel-border); }
code { font-family: var(--vscode-editor-font-family); }
.notice { color: var(--vscode-editorWarning-foreground); }
</style></head><body>${body}</body></html>`;
}

function summary(m: OpenedModel): string {
  const row = (k: string, v: string | number | undefined): string => (v === undefined || v === '' ? '' : `<tr><th scope="row">${k}</th><td>${escape(String(v))}</td></tr>`);
  const io = (list: OpenedModel['inputs']): string => list.map((i) => `<code>${escape(i.name)}</code> ${i.dtype}[${i.shape.map((d) => d ?? '?').join(', ')}]`).join('<br>');
  return `<h1>${escape(m.path.split(/[\\/]/).pop()!)}</h1>
<p>Opened in the <strong>Layer Explorer</strong> (Mechanist view in the activity bar).</p>
${m.notices.map((n) => `<p class="notice">${escape(n)}</p>`).join('')}
<table>
${row('Architecture', m.family)}
${row('Layers', m.layers || undefined)}
${row('Encoder layers', m.encoderBlocks.length || undefined)}
${row('Heads', m.heads ? `${m.heads}${m.kvHeads !== m.heads ? ` (${m.kvHeads} KV heads)` : ''} × ${m.headDim}` : undefined)}
${row('d_model', m.dModel || undefined)}
${row('Vocabulary', m.vocabSize)}
${row('Parameters', `${m.paramCount.toLocaleString('en-US')} (${formatCount(m.paramCount)})`)}
${row('Opset', m.opset)}
${row('Producer', m.producer)}
${row('External data', m.externalData.join(', '))}
${row('Hook points', m.hookPoints.length || undefined)}
<tr><th scope="row">Inputs</th><td>${io(m.inputs)}</td></tr>
<tr><th scope="row">Outputs</th><td>${io(m.outputs)}</td></tr>
</table>`;
}
