/**
 * The causal-trace panel (host side): serves media/trace, answers the webview's requests
 * (ready, reveal, export) and restores itself after a reload from the stored run.
 */
import type * as vscode from 'vscode';
import { RunPanel, createPanel, fileSafe, registerRestorer, saveExport } from '../shared/runPanel';
import { traceCsv } from './protocol';
import type { ToWebview, TraceRequest, TraceResponses, TraceRun, TraceViewState } from './protocol';

/** Reveals a block (and the part a kind restores) in the Layer Explorer. */
export type RevealBlock = (modelPath: string, layer: number, part: 'block' | 'mlp' | 'attention') => Promise<boolean>;

export class TracePanel extends RunPanel<TraceRequest, Exclude<ToWebview, { type: 'response' }>> {
  static readonly viewType = 'mechanist.trace';
  private static readonly open = new Map<string, TracePanel>();

  private constructor(
    panel: vscode.WebviewPanel,
    private readonly run: TraceRun,
    extensionUri: vscode.Uri,
    private readonly reveal: RevealBlock,
  ) {
    super(panel, extensionUri, 'trace', () => TracePanel.open.delete(run.id));
    TracePanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: TraceRun, extensionUri: vscode.Uri, reveal: RevealBlock): TracePanel {
    const existing = TracePanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = createPanel(TracePanel.viewType, title(run), extensionUri);
    return new TracePanel(panel, run, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => TraceRun | undefined, extensionUri: vscode.Uri, reveal: RevealBlock): vscode.Disposable {
    return registerRestorer<TraceViewState, TraceRun>(TracePanel.viewType, 'causal-trace', load, (panel, run) => {
      panel.title = title(run);
      new TracePanel(panel, run, extensionUri, reveal);
    });
  }

  /** The panels now open (for tests). */
  static panels(): TracePanel[] {
    return [...TracePanel.open.values()];
  }

  get runId(): string {
    return this.run.id;
  }

  protected async handle(r: TraceRequest): Promise<TraceResponses[TraceRequest['method']]> {
    switch (r.method) {
      case 'ready':
        return this.run;
      case 'reveal': {
        const part = r.kind === 'mlp' ? 'mlp' : r.kind === 'attn' ? 'attention' : 'block';
        return { revealed: await this.reveal(this.run.modelPath, r.layer, part) };
      }
      case 'export': {
        const base = `causal-trace-${fileSafe(this.run.subject)}${r.kind ? `-${r.kind}` : ''}`;
        const text = (): string => (r.format === 'json' ? JSON.stringify(this.run, null, 1) : traceCsv(this.run));
        return { saved: await saveExport(this.run.modelPath, base, r.format, text, r.pngDataUrl) };
      }
    }
  }
}

function title(run: TraceRun): string {
  return `Causal trace: ${run.subject} → ${run.results[0]?.answer.text.trim() ?? '?'}`;
}
