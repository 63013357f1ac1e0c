/**
 * Messages between the concept-edit panel (host: panel.ts) and its webview (media/edit/main.ts).
 * The webview starts with a `ready` request and gets the run and where its file is now; the
 * host pushes `update` when the file moves or is discarded.
 */
import type { EditResult } from '../../runtime/methods/edit';
import type { RequestEnvelope, ResponseEnvelope } from '../shared/rpc';

/** A stored concept-edit run: what the panel shows and the Runs view lists. */
export interface EditRun {
  id: string;
  /** The original model (never modified). */
  modelPath: string;
  createdAt: string;
  result: EditResult;
}

/** Where the edited model is now: written, moved by "Save as...", or discarded. */
export interface EditFileState {
  /** The edited model's path (the result's `out` until moved). */
  out: string;
  /** Every file of the edit (model, data files written for it). */
  files: string[];
  /** False once discarded or deleted outside VS Code. */
  exists: boolean;
  discarded?: boolean;
}

/** What the panel shows. */
export interface EditView {
  run: EditRun;
  file: EditFileState;
}

/** Requests the webview sends, with the result each gets. */
export type EditRequest =
  /** First message: returns the run and its file's state. */
  | { method: 'ready' }
  /** Opens the edited model in the Layer Explorer. */
  | { method: 'open' }
  /** Deletes the edited model's files after a modal confirmation. */
  | { method: 'discard' }
  /** Moves the edited model to a file the user picks. */
  | { method: 'saveAs' }
  /** Reveals the edited block in the original model's Layer Explorer tree. */
  | { method: 'reveal' }
  /** Saves the run as JSON to a file the user picks. */
  | { method: 'export'; format: 'json' };

export interface EditResponses {
  ready: EditView;
  open: { opened: boolean };
  discard: { discarded: boolean };
  saveAs: { saved?: string };
  reveal: { revealed: boolean };
  export: { saved?: string };
}

export type FromWebview = RequestEnvelope<EditRequest>;
export type ToWebview = ResponseEnvelope | { type: 'update'; view: EditView };

/** State the webview persists (UI state only; the run itself is restored by the host). */
export interface EditViewState {
  runId: string;
}

/** The block index of an edited layer name (`blocks.3.mlp` -> 3), if it names one. */
export function blockOf(layer: string): number | undefined {
  const m = /^blocks\.(\d+)\./.exec(layer);
  return m ? Number(m[1]) : undefined;
}
