/**
 * The decomposition panel (host side): serves media/decompose, answers the webview's requests
 * (ready, reveal, export), forwards Layer Explorer selections as `highlight`, and restores
 * itself after a reload from the stored run.
 */
import * as path from 'node:path';
import type * as vscode from 'vscode';
import { RunPanel, createPanel, fileSafe, registerRestorer, saveExport } from '../shared/runPanel';
import { componentTarget, decomposeCsv } from './protocol';
import type { DecomposeRequest, DecomposeResponses, DecomposeRun, DecomposeViewState, ToWebview } from './protocol';

/** Reveals a block part (or a head) of a model in the Layer Explorer. */
export type RevealPart = (modelPath: string, layer: number, part: 'attention' | 'mlp', head?: number) => Promise<boolean>;

export class DecomposePanel extends RunPanel<DecomposeRequest, Exclude<ToWebview, { type: 'response' }>> {
  static readonly viewType = 'mechanist.decompose';
  private static readonly open = new Map<string, DecomposePanel>();
  /** The component last highlighted from the Layer Explorer (for tests). */
  highlighted?: string;

  private constructor(
    panel: vscode.WebviewPanel,
    private readonly run: DecomposeRun,
    extensionUri: vscode.Uri,
    private readonly reveal: RevealPart,
  ) {
    super(panel, extensionUri, 'decompose', () => DecomposePanel.open.delete(run.id));
    DecomposePanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: DecomposeRun, extensionUri: vscode.Uri, reveal: RevealPart): DecomposePanel {
    const existing = DecomposePanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = createPanel(DecomposePanel.viewType, title(run), extensionUri);
    return new DecomposePanel(panel, run, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => DecomposeRun | undefined, extensionUri: vscode.Uri, reveal: RevealPart): vscode.Disposable {
    return registerRestorer<DecomposeViewState, DecomposeRun>(DecomposePanel.viewType, 'decomposition', load, (panel, run) => {
      panel.title = title(run);
      new DecomposePanel(panel, run, extensionUri, reveal);
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

  protected async handle(r: DecomposeRequest): Promise<DecomposeResponses[DecomposeRequest['method']]> {
    switch (r.method) {
      case 'ready':
        return this.run;
      case 'reveal': {
        const c = this.run.components.find((x) => x.name === r.component);
        const t = c && componentTarget(c);
        return { revealed: t ? await this.reveal(this.run.modelPath, t.layer, t.part, t.head) : false };
      }
      case 'export': {
        const base = `decomposition-${fileSafe(path.basename(this.run.image).replace(/\.[^.]+$/, ''))}${r.what ? `-${r.what.replace(/[^\w.-]+/g, '_')}` : ''}`;
        const text = (): string => (r.format === 'json' ? JSON.stringify(this.run, null, 1) : decomposeCsv(this.run));
        return { saved: await saveExport(this.run.modelPath, base, r.format, text, r.pngDataUrl) };
      }
    }
  }
}

function title(run: DecomposeRun): string {
  return `Decomposition: ${path.basename(run.image)}${run.feature ? ` · ${run.feature}` : ''}`;
}
