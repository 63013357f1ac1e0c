/**
 * The localization panel (host side): serves media/localize, answers the webview's requests
 * (ready, reveal, edit, export) and restores itself after a reload from the stored run.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { RunPanel, createPanel, fileSafe, registerRestorer, saveExport } from '../shared/runPanel';
import { localizeCsv, windowOf } from './protocol';
import type { EditConceptArgs, LocalizeRequest, LocalizeResponses, LocalizeRun, LocalizeViewState } from './protocol';

/** Reveals the cross-attention of a decoder block in the Layer Explorer. */
export type RevealCross = (modelPath: string, block: number) => Promise<boolean>;

/** The command of the concept-edit flow (another feature); the panel runs it when it exists. */
export const EDIT_COMMAND = 'mechanist.editConcept';

export class LocalizePanel extends RunPanel<LocalizeRequest, never> {
  static readonly viewType = 'mechanist.localize';
  private static readonly open = new Map<string, LocalizePanel>();

  private constructor(
    panel: vscode.WebviewPanel,
    private readonly run: LocalizeRun,
    extensionUri: vscode.Uri,
    private readonly reveal: RevealCross,
  ) {
    super(panel, extensionUri, 'localize', () => LocalizePanel.open.delete(run.id));
    LocalizePanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: LocalizeRun, extensionUri: vscode.Uri, reveal: RevealCross): LocalizePanel {
    const existing = LocalizePanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = createPanel(LocalizePanel.viewType, title(run), extensionUri);
    return new LocalizePanel(panel, run, extensionUri, reveal);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => LocalizeRun | undefined, extensionUri: vscode.Uri, reveal: RevealCross): vscode.Disposable {
    return registerRestorer<LocalizeViewState, LocalizeRun>(LocalizePanel.viewType, 'localization', load, (panel, run) => {
      panel.title = title(run);
      new LocalizePanel(panel, run, extensionUri, reveal);
    });
  }

  /** The panels now open (for tests). */
  static panels(): LocalizePanel[] {
    return [...LocalizePanel.open.values()];
  }

  get runId(): string {
    return this.run.id;
  }

  /** What the edit button passes to `mechanist.editConcept` for the window at `start`. */
  editArgs(start: number): EditConceptArgs {
    const w = windowOf(this.run.result, start);
    return {
      modelPath: this.run.modelPath,
      layers: w.layers,
      projections: ['k', 'v'],
      modules: w.modules,
      blocks: w.blocks,
      encoderPath: this.run.encoderPath,
      prompt: this.run.prompt,
      targetPrompt: this.run.targetPrompt,
      decoderPrompt: this.run.decoderPrompt,
    };
  }

  /** Runs the edit flow on a window (what the panel's button does); `answers` skip those questions (API, tests). Resolves when the flow ends, with the edited model's file when one was written. */
  async edit(start: number, answers?: EditConceptArgs['answers']): Promise<LocalizeResponses['edit']> {
    const commands = await vscode.commands.getCommands(true);
    if (!commands.includes(EDIT_COMMAND)) {
      const message = 'Mechanist: the concept edit command (mechanist.editConcept) is not available in this version.';
      void vscode.window.showInformationMessage(message);
      return { started: false, message };
    }
    const run = await vscode.commands.executeCommand<{ result?: { out?: string } } | undefined>(EDIT_COMMAND, { ...this.editArgs(start), answers });
    return { started: true, out: run?.result?.out };
  }

  protected async handle(r: LocalizeRequest): Promise<LocalizeResponses[LocalizeRequest['method']]> {
    switch (r.method) {
      case 'ready':
        return this.run;
      case 'reveal': {
        const block = this.run.result.blocks[r.start];
        return { revealed: block === undefined ? false : await this.reveal(this.run.modelPath, block) };
      }
      case 'edit':
        return this.edit(r.start);
      case 'export': {
        const text = (): string => (r.format === 'json' ? JSON.stringify(this.run, null, 1) : localizeCsv(this.run));
        return { saved: await saveExport(this.run.modelPath, `localization-${fileSafe(path.basename(this.run.modelPath, '.onnx'))}`, r.format, text, r.pngDataUrl) };
      }
    }
  }
}

function title(run: LocalizeRun): string {
  return `Localization: ${run.prompt} → ${run.targetPrompt}`;
}
