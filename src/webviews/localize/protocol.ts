/**
 * Messages between the localization panel (host: panel.ts) and its webview (media/localize).
 * The webview starts with a `ready` request and gets the run to show.
 */
import type { LocalizeResult } from '../../runtime/methods/localize';
import type { RequestEnvelope, ResponseEnvelope } from '../shared/rpc';

/** A stored localization run: what was asked and the sweep's result. */
export interface LocalizeRun {
  id: string;
  modelPath: string;
  /** The encoder file, for a decoder exported apart. */
  encoderPath?: string;
  createdAt: string;
  prompt: string;
  targetPrompt: string;
  decoderPrompt?: string;
  result: LocalizeResult;
}

/** Requests the webview sends, with the result each gets. */
export type LocalizeRequest =
  /** First message: returns the run to show. */
  | { method: 'ready' }
  /** Reveal the cross-attention of the window starting at `start` in the Layer Explorer. */
  | { method: 'reveal'; start: number }
  /** Open the concept edit on the K/V projections of the window starting at `start`. */
  | { method: 'edit'; start: number }
  /** Save the numbers (csv/json) or the chart (png, as a data URL) to a file the user picks. */
  | { method: 'export'; format: 'csv' | 'json' | 'png'; pngDataUrl?: string };

export interface LocalizeResponses {
  ready: LocalizeRun;
  reveal: { revealed: boolean };
  /** `out`: the edited model, when the flow (which the request waits for) wrote one. */
  edit: { started: boolean; message?: string; out?: string };
  export: { saved?: string };
}

export type FromWebview = RequestEnvelope<LocalizeRequest>;
export type ToWebview = ResponseEnvelope;

/** State the webview persists (UI state only). */
export interface LocalizeViewState {
  runId: string;
  view: 'chart' | 'table';
  /** The selected window start (default the best). */
  selected?: number;
  /** Whether the complement's bars are shown. */
  complement: boolean;
}

/** The arguments of `mechanist.editConcept` for a window: the model, its cross-attention layers, their K and V projections (all edited together by default), and what the run compared. */
export interface EditConceptArgs {
  modelPath: string;
  layers: string[];
  projections: ('k' | 'v')[];
  /** Module paths of the layers, decoder block indices, and what the run compared (context for the edit flow). */
  modules: string[];
  blocks: number[];
  encoderPath?: string;
  prompt: string;
  targetPrompt: string;
  /** The decoder prompt the localization scored after (the edit checks the same answer). */
  decoderPrompt?: string;
  /** Answers the caller gives the edit flow (an API, a test): those questions are not asked. */
  answers?: { out?: string; source?: string; target?: string; templates?: string[]; decoderPrompt?: string; lambda?: number; layer?: string };
}

/** The cross-attention layers of the window at `start`. */
export function windowOf(r: Pick<LocalizeResult, 'layers' | 'modules' | 'blocks' | 'window'>, start: number): { layers: string[]; modules: string[]; blocks: number[] } {
  const end = start + r.window;
  return { layers: r.layers.slice(start, end), modules: r.modules.slice(start, end), blocks: r.blocks.slice(start, end) };
}

/** The CSV export: one row per window. */
export function localizeCsv(run: LocalizeRun): string {
  const r = run.result;
  const lines = ['start,layers,blocks,score,complement,best'];
  r.scores.forEach((s, i) => {
    const w = windowOf(r, i);
    lines.push([i, `"${w.layers.join(' ')}"`, `"${w.blocks.join(' ')}"`, s, r.complement[i], i === r.best.start ? 1 : 0].join(','));
  });
  return `${lines.join('\n')}\n`;
}
