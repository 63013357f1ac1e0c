/** "Reveal in Graph": lists the ONNX nodes behind a Layer Explorer node in a read-only document. */
import * as vscode from 'vscode';
import type { EngineClient } from '../engine/client';
import type { ExplorerNode } from '../providers/explorerNodes';

export async function revealInGraph(engine: EngineClient, node: ExplorerNode | undefined): Promise<vscode.TextDocument | undefined> {
  if (!node) {
    void vscode.window.showInformationMessage('Mechanist: choose a node in the Layer Explorer, then "Reveal in Graph".');
    return undefined;
  }
  const nodes = await engine.request('nodes', { id: node.model.id, names: node.nodes });
  const lines = [
    `# ${node.label}${node.layer !== undefined ? ` (layer ${node.layer})` : ''} in ${node.model.path}`,
    '',
    `${nodes.length} ONNX nodes:`,
    '',
    ...nodes.map((n) => `- \`${n.name}\` **${n.op}** (${n.inputs.filter(Boolean).join(', ')}) -> ${n.outputs.join(', ')}`),
  ];
  const doc = await vscode.workspace.openTextDocument({ content: lines.join('\n'), language: 'markdown' });
  await vscode.window.showTextDocument(doc, { preview: true });
  return doc;
}
