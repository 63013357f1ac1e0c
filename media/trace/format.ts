/** Pure text helpers of the causal-trace panel: titles, token labels, summaries. */
import type { TraceKind, TraceResult } from '../../src/runtime/methods/causalTrace';
import { windowLayers } from '../../src/runtime/methods/window';

/** Heatmap title as in ROME's figures. */
export function kindTitle(r: Pick<TraceResult, 'kind' | 'window'>): string {
  if (r.kind === 'residual') return 'Restoring residual stream (single layer)';
  return `Restoring ${r.kind === 'mlp' ? 'MLP' : 'attention'} output (window ${r.window})`;
}

/** Short name of a kind, for labels. */
export function kindName(kind: TraceKind): string {
  return kind === 'residual' ? 'Residual' : kind === 'mlp' ? 'MLP' : 'Attention';
}

/** The x-axis title of a kind's heatmap. */
export function layerAxisTitle(r: Pick<TraceResult, 'kind' | 'window'>): string {
  return r.kind === 'residual' ? 'Restored layer' : `Center of ${r.window} restored ${r.kind === 'mlp' ? 'MLP' : 'attention'} layers`;
}

/** A token made visible in a label: control characters shown as symbols, empty as ∅. */
export function tokenText(s: string): string {
  const t = s.replace(/\r?\n/g, '↵').replace(/\t/g, '⇥');
  return t.length ? t : '∅';
}

/** A token quoted for prose (tooltips, aria labels): ' is'. */
export function quoteToken(s: string): string {
  return `'${tokenText(s)}'`;
}

/** Whether token index `t` is in the subject range [start, end). */
export function isSubject(r: Pick<TraceResult, 'subjectRange'>, t: number): boolean {
  return t >= r.subjectRange[0] && t < r.subjectRange[1];
}

/** The row label of token `t`: subject tokens get a trailing `*`. */
export function tokenLabel(r: Pick<TraceResult, 'subjectRange' | 'inputTokens'>, t: number): string {
  const s = tokenText(r.inputTokens.strings[t] ?? `#${t}`);
  return isSubject(r, t) ? `${s}*` : s;
}

/** Four decimals, the panel's number format. */
export function score(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : '–';
}

/** The (layer, token) of the highest score. */
export function argmax(scores: number[][]): { layer: number; token: number; value: number } {
  let best = { layer: 0, token: 0, value: -Infinity };
  scores.forEach((row, layer) =>
    row.forEach((value, token) => {
      if (value > best.value) best = { layer, token, value };
    }),
  );
  return best;
}

/** The aria-label of a result's heatmap. */
export function ariaSummary(r: TraceResult): string {
  const layers = r.scores.length;
  const tokens = r.inputTokens.strings.length;
  const best = argmax(r.scores);
  const [s0, s1] = r.subjectRange;
  const subject = r.inputTokens.strings.slice(s0, s1).map(quoteToken).join(', ');
  return (
    `${kindName(r.kind)} heatmap, ${layers} layers by ${tokens} tokens, ` +
    `max ${score(best.value)} at layer ${best.layer}, token ${quoteToken(r.inputTokens.strings[best.token] ?? '')}. ` +
    `Clean p(answer) ${score(r.highScore)}, corrupted ${score(r.lowScore)}. Subject tokens ${subject}.`
  );
}

/** One line describing how the subject was corrupted. */
export function corruptionText(c: TraceResult['corruption']): string {
  if (c.type === 'replace') return `Subject replaced by “${c.subject}” (${c.subjectIds.length} token${c.subjectIds.length === 1 ? '' : 's'})`;
  const seed = c.seed === undefined ? '' : `, seed ${c.seed}`;
  return `Gaussian noise on the subject embeddings, ν = ${+c.nu.toPrecision(4)}, ${c.samples} sample${c.samples === 1 ? '' : 's'}${seed}`;
}

/** `scores[layer][token]` as rows of tokens: `out[token][layer]`. */
export function byToken(scores: number[][], tokens: number): number[][] {
  return Array.from({ length: tokens }, (_, t) => scores.map((row) => row[t] ?? NaN));
}

/** First and last layer restored for a window centred on `l`. */
export function restoredLayers(l: number, window: number, layers: number): [number, number] {
  const list = windowLayers(l, window, layers);
  return [list[0], list[list.length - 1]];
}

/** Tooltip line naming the restored layer(s) of a cell. */
export function restoredText(r: Pick<TraceResult, 'kind' | 'window' | 'scores'>, l: number): string {
  if (r.kind === 'residual') return `Layer ${l} restored`;
  const [lo, hi] = restoredLayers(l, r.window, r.scores.length);
  return lo === hi ? `Layer ${lo} restored` : `Layers ${lo}–${hi} restored (centre ${l})`;
}
