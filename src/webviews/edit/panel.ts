/**
 * The concept-edit panel (host side): serves media/edit, answers the webview's requests (ready,
 * open, discard, save as, reveal, export) through the feature's EditHost and restores itself
 * after a reload from the stored run.
 */
import type * as vscode from 'vscode';
import { RunPanel, createPanel, fileSafe, registerRestorer, saveExport } from '../shared/runPanel';
import type { EditFileState, EditRequest, EditResponses, EditRun, EditView, EditViewState, ToWebview } from './protocol';

/** What the panel's buttons do (commands/editConcept.ts implements them). */
export interface EditHost {
  /** Where the run's edited model is now. */
  file(run: EditRun): EditFileState;
  /** Opens the edited model in the Layer Explorer. */
  open(run: EditRun): Promise<boolean>;
  /** Deletes the edited model's files after a modal confirmation. */
  discard(run: EditRun): Promise<boolean>;
  /** Moves the edited model to a file the user picks; its new path, or undefined. */
  saveAs(run: EditRun): Promise<string | undefined>;
  /** Reveals the edited block in the original model's tree. */
  reveal(run: EditRun): Promise<boolean>;
}

export class EditPanel extends RunPanel<EditRequest, Exclude<ToWebview, { type: 'response' }>> {
  static readonly viewType = 'mechanist.edit';
  private static readonly open = new Map<string, EditPanel>();

  private constructor(
    panel: vscode.WebviewPanel,
    private readonly run: EditRun,
    extensionUri: vscode.Uri,
    private readonly host: EditHost,
  ) {
    super(panel, extensionUri, 'edit', () => EditPanel.open.delete(run.id));
    EditPanel.open.set(run.id, this);
  }

  /** Shows a run (reusing its panel when open). */
  static show(run: EditRun, extensionUri: vscode.Uri, host: EditHost): EditPanel {
    const existing = EditPanel.open.get(run.id);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = createPanel(EditPanel.viewType, title(run), extensionUri);
    return new EditPanel(panel, run, extensionUri, host);
  }

  /** Restores panels after a window reload from their persisted state. */
  static registerSerializer(load: (runId: string) => EditRun | undefined, extensionUri: vscode.Uri, host: EditHost): vscode.Disposable {
    return registerRestorer<EditViewState, EditRun>(EditPanel.viewType, 'concept-edit', load, (panel, run) => {
      panel.title = title(run);
      new EditPanel(panel, run, extensionUri, host);
    });
  }

  /** The panels now open (for tests). */
  static panels(): EditPanel[] {
    return [...EditPanel.open.values()];
  }

  /** Re-sends the file state to every open panel of a run (after a move or a discard). */
  static refresh(runId: string): void {
    EditPanel.open.get(runId)?.update();
  }

  get runId(): string {
    return this.run.id;
  }

  private view(): EditView {
    return { run: this.run, file: this.host.file(this.run) };
  }

  private update(): void {
    this.post({ type: 'update', view: this.view() });
  }

  protected async handle(r: EditRequest): Promise<EditResponses[EditRequest['method']]> {
    switch (r.method) {
      case 'ready':
        return this.view();
      case 'open':
        return { opened: await this.host.open(this.run) };
      case 'discard':
        return { discarded: await this.host.discard(this.run) };
      case 'saveAs':
        return { saved: await this.host.saveAs(this.run) };
      case 'reveal':
        return { revealed: await this.host.reveal(this.run) };
      case 'export': {
        const base = `concept-edit-${fileSafe(`${this.run.result.source}-to-${this.run.result.target}`)}`;
        return { saved: await saveExport(this.run.modelPath, base, 'json', () => JSON.stringify({ ...this.run, file: this.host.file(this.run) }, null, 1)) };
      }
    }
  }
}

function title(run: EditRun): string {
  return `Concept edit: ${run.result.source} → ${run.result.target}`;
}
