/**
 * The attention-analysis panel (host side): serves media/attention for runs of patterns,
 * knockout, contributions and the logit lens; answers the webview's requests (ready, reveal,
 * export) and restores itself after a reload from the stored run. Head clicks reuse the
 * model's open patterns panel instead of opening a tab per head.
 */
import * as vscode from 'vscode';
import { RunPanel, createPanel, registerRestorer, saveExport } from '../shared/runPanel';
import { attentionCsv, runTitle } from './protocol';
import type { AttentionRequest, AttentionResponses, AttentionRun, AttentionViewState, Focus, ToWebview } from './protocol';

/** Reveals a block (its attention, one head; or the block itself) in the Layer Explorer. */
export type RevealHead = (modelPath: string, layer: number, head?: number, part?: 'block' | 'attention') => Promise<boolean>;

export class AttentionPanel extends RunPanel<AttentionRequest, Exclude<ToWebview, { type: 'response' }>> {
  static readonly viewType = 'mechanist.attention';
  private static readonly open = new Set<AttentionPanel>();

  private constructor(
    panel: vscode.WebviewPanel,
    private run: AttentionRun,
    private focus: Focus | undefined,
    extensionUri: vscode.Uri,
    private readonly reveal: RevealHead,
  ) {
    super(panel, extensionUri, 'attention', () => AttentionPanel.open.delete(this));
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
    const panel = createPanel(AttentionPanel.viewType, runTitle(run, focus), extensionUri, { viewColumn: vscode.ViewColumn.Active, preserveFocus: reuse });
    return new AttentionPanel(panel, run, focus, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => AttentionRun | undefined, extensionUri: vscode.Uri, reveal: RevealHead): vscode.Disposable {
    return registerRestorer<AttentionViewState, AttentionRun>(AttentionPanel.viewType, 'attention', load, (panel, run, state) => {
      // The webview restores its own UI state (head, cell, view) from getState().
      const focus: Focus | undefined = run.kind === 'patterns' && state.head !== undefined ? { head: state.head } : undefined;
      panel.title = runTitle(run, focus);
      new AttentionPanel(panel, run, focus, extensionUri, reveal);
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

  protected async handle(r: AttentionRequest): Promise<AttentionResponses[AttentionRequest['method']]> {
    switch (r.method) {
      case 'ready':
        return { run: this.run, focus: this.focus };
      case 'reveal':
        return { revealed: await this.reveal(this.run.modelPath, r.layer, r.head, r.part) };
      case 'export': {
        const suffix = r.name ? `-${r.name.replace(/[^\w-]+/g, '_')}` : '';
        const base = `${this.run.kind}-${this.run.prompt.slice(0, 40).replace(/[^\w-]+/g, '_').replace(/^_+|_+$/g, '')}${suffix}`;
        const text = (): string => (r.format === 'json' ? JSON.stringify(this.run, null, 1) : attentionCsv(this.run));
        return { saved: await saveExport(this.run.modelPath, base, r.format, text, r.pngDataUrl) };
      }
    }
  }
}
