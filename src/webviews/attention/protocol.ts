/**
 * Messages between the attention-analysis panel (host: panel.ts) and its webview
 * (media/attention/main.ts). One panel type shows the four kinds of run: per-head attention
 * patterns, knockout sweeps, head contributions and the logit lens. The webview starts with a
 * `ready` request and gets the run to show (and what to focus, e.g. one head).
 */
import type { ContributionsOutput, KnockoutSweep, PatternsOutput } from '../../engine/methods/attention';
import type { LensResult } from '../../runtime/methods/logitLens';
import type { RequestEnvelope, ResponseEnvelope } from '../shared/rpc';

/** The kinds of run this panel shows (also their RunStore kinds). */
export type AttentionKind = 'patterns' | 'knockout' | 'contributions' | 'lens';

/** What every run shown here has. */
interface RunBase {
  id: string;
  /** The model file it ran on. */
  modelPath: string;
  createdAt: string;
  prompt: string;
}

/** Attention patterns of every head of one layer. */
export interface PatternsRun extends RunBase, PatternsOutput {
  kind: 'patterns';
}

/** A knockout sweep: rows = the whole source set, then each source token; columns = layers. */
export interface KnockoutRun extends RunBase, KnockoutSweep {
  kind: 'knockout';
  /** How the sources were chosen (e.g. the subject text), for the header. */
  sourcesLabel: string;
}

/** Head contribution norms to one position. */
export interface ContributionsRun extends RunBase, ContributionsOutput {
  kind: 'contributions';
}

/** The logit lens: top tokens per (layer, position). */
export interface LensRun extends RunBase, LensResult {
  kind: 'lens';
}

export type AttentionRun = PatternsRun | KnockoutRun | ContributionsRun | LensRun;

/** What the panel should bring forward: one head of a patterns run (or all: 'all'), a layer's row. */
export interface Focus {
  head?: number | 'all';
  layer?: number;
}

/** Requests the webview sends, with the result each gets. */
export type AttentionRequest =
  /** First message: returns the run to show and what to focus. */
  | { method: 'ready' }
  /** A cell was clicked: reveal the block's attention (and head), or with part 'block' the block, in the Layer Explorer. */
  | { method: 'reveal'; layer: number; head?: number; part?: 'block' | 'attention' }
  /** Save the numbers (csv/json) or a figure (png, as a data URL) to a file the user picks; `name` suffixes the file name. */
  | { method: 'export'; format: 'csv' | 'json' | 'png'; name?: string; pngDataUrl?: string };

export interface AttentionResponses {
  ready: { run: AttentionRun; focus?: Focus };
  reveal: { revealed: boolean };
  export: { saved?: string };
}

export type FromWebview = RequestEnvelope<AttentionRequest>;
/** Host pushes: show another run (the panel is reused) or focus a part of the one shown. */
export type ToWebview = ResponseEnvelope | { type: 'update'; run: AttentionRun; focus?: Focus };

/** State the webview persists (UI state only; the run itself is restored by the host). */
export interface AttentionViewState {
  runId: string;
  kind: AttentionKind;
  /** 'chart' or the accessible 'table' view. */
  view: 'chart' | 'table';
  /** Patterns: the head shown, or 'all' for the grid. */
  head?: number | 'all';
  /** Contributions: the selected (layer, head); lens: the selected (layer, position). */
  cell?: [number, number];
}

/** A human title per run kind. */
export function runTitle(run: AttentionRun, focus?: Focus): string {
  switch (run.kind) {
    case 'patterns': {
      const head = focus?.head;
      return head === undefined || head === 'all' ? `Attention: layer ${run.layer}` : `Attention: L${run.layer} H${head}`;
    }
    case 'knockout':
      return `Knockout: ${run.sourcesLabel} → ${run.answer.text.trim() || run.answer.text}`;
    case 'contributions':
      return `Head contributions: ${JSON.stringify(run.tokens.strings[run.position] ?? '')}`;
    case 'lens':
      return `Logit lens → ${run.answer.text.trim() || run.answer.text}`;
  }
}

function q(s: string): string {
  return JSON.stringify(s);
}

/** CSV of a run's numbers (one row per number, with indices and token strings). */
export function attentionCsv(run: AttentionRun): string {
  const lines: string[] = [];
  const tok = run.tokens.strings;
  switch (run.kind) {
    case 'patterns':
      lines.push('layer,head,query_index,query_token,key_index,key_token,weight');
      run.patterns.forEach((rows, h) => rows.forEach((row, qi) => row.forEach((w, k) => lines.push([run.layer, h, qi, q(tok[qi]), k, q(tok[k]), w].join(',')))));
      break;
    case 'knockout':
      lines.push('sources,layer,blocked_from,blocked_to,p_answer,baseline,relative_change');
      for (const r of run.rows) {
        r.p.forEach((p, l) => lines.push([q(r.sources.join(' ')), l, run.windows[l][0], run.windows[l][1] - 1, p, run.baseline, r.relativeChange[l]].join(',')));
      }
      break;
    case 'contributions':
      lines.push('layer,head,source_index,source_token,norm');
      run.heads.forEach((heads, l) =>
        heads.forEach((n, h) => {
          lines.push([l, h, 'total', '', n].join(','));
          run.bySource[l][h].forEach((x, j) => lines.push([l, h, j, q(tok[j]), x].join(',')));
        }),
      );
      break;
    case 'lens':
      lines.push('layer,position,position_token,rank,token_id,token,p,p_answer');
      for (const l of run.layers) {
        l.top.forEach((top, s) => top.forEach((t, k) => lines.push([l.layer, s, q(tok[s]), k + 1, t.id, q(t.token), t.p, l.pAnswer[s]].join(','))));
      }
      break;
  }
  return `${lines.join('\n')}\n`;
}
