/**
 * Messages between the causal-trace panel (host: panel.ts) and its webview (media/trace/main.ts).
 * The webview starts with a `ready` request and gets the run to show.
 */
import type { TraceKind, TraceResult } from '../../runtime/methods/causalTrace';
import type { RequestEnvelope, ResponseEnvelope } from '../shared/rpc';

/** A stored causal-trace run: what the panel shows and the Runs view lists. */
export interface TraceRun {
  id: string;
  /** The model file it ran on. */
  modelPath: string;
  prompt: string;
  subject: string;
  createdAt: string;
  /** One result per kind (residual, mlp, attn), in that order where present. */
  results: TraceResult[];
}

/** Requests the webview sends, with the result each gets. */
export type TraceRequest =
  /** First message: returns the run to show. */
  | { method: 'ready' }
  /** A heatmap cell was clicked: reveal that block in the Layer Explorer. */
  | { method: 'reveal'; kind: TraceKind; layer: number; token: number }
  /** Save the numbers (csv/json) or a heatmap picture (png, as a data URL) to a file the user picks. */
  | { method: 'export'; format: 'csv' | 'json' | 'png'; kind?: TraceKind; pngDataUrl?: string };

export interface TraceResponses {
  ready: TraceRun;
  reveal: { revealed: boolean };
  export: { saved?: string };
}

export type FromWebview = RequestEnvelope<TraceRequest>;
export type ToWebview = ResponseEnvelope | { type: 'update'; run: TraceRun };

/** State the webview persists (UI state only; the run itself is restored by the host). */
export interface TraceViewState {
  runId: string;
  /** 'chart' or the accessible 'table' view. */
  view: 'chart' | 'table';
}

/** The rows of the CSV export: kind, layer, token index, token, score. */
export function traceCsv(run: TraceRun): string {
  const lines = ['kind,layer,token_index,token,score,low_score,high_score'];
  for (const r of run.results) {
    r.scores.forEach((row, layer) =>
      row.forEach((score, t) => {
        lines.push([r.kind, layer, t, JSON.stringify(r.inputTokens.strings[t]), score, r.lowScore, r.highScore].join(','));
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}
