/** The HTML shell of every script-running webview: strict CSP with a nonce, local resources only. */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

/** Webview options: scripts on, resources limited to media/ and dist/. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return {
    enableScripts: true,
    retainContextWhenHidden: false,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'media'), vscode.Uri.joinPath(extensionUri, 'dist')],
  };
}

/** The page for a panel whose front-end is dist/media/<panel>.js (+ media/<panel>/style.css if present). */
export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, panel: string, title: string): string {
  const nonce = randomBytes(16).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'media', `${panel}.js`));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', panel, 'style.css'));
  const shared = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', 'shared', 'base.css'));
  const csp = [`default-src 'none'`, `img-src ${webview.cspSource} data:`, `style-src ${webview.cspSource} 'nonce-${nonce}'`, `font-src ${webview.cspSource}`, `script-src 'nonce-${nonce}'`].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title.replace(/[<>&"]/g, '')}</title>
<link rel="stylesheet" href="${shared}" nonce="${nonce}">
<link rel="stylesheet" href="${style}" nonce="${nonce}">
</head>
<body>
<main id="app" aria-live="polite"></main>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}
