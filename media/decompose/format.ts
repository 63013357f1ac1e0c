/** Pure helpers of the decomposition panel: labels, ranking, heat-map colours. */
import type { DecomposedView } from '../../src/engine/methods/decompose';
import type { Ranking } from '../../src/webviews/decompose/protocol';

/** A short human label: "L1 H0", "L1 MLP", "L0 attn bias", "embedding". */
export function componentLabel(c: Pick<DecomposedView, 'kind' | 'layer' | 'head'>): string {
  if (c.kind === 'embed') return 'embedding';
  if (c.kind === 'head') return `L${c.layer} H${c.head}`;
  if (c.kind === 'mlp') return `L${c.layer} MLP`;
  return `L${c.layer} attn bias`;
}

/** A longer description of a component. */
export function componentTitle(c: Pick<DecomposedView, 'kind' | 'layer' | 'head'>): string {
  if (c.kind === 'embed') return 'Embedding (class + position embeddings)';
  if (c.kind === 'head') return `Layer ${c.layer}, head ${c.head}`;
  if (c.kind === 'mlp') return `Layer ${c.layer} MLP`;
  return `Layer ${c.layer} attention output bias`;
}

/** Components ranked by norm or by feature score (highest first; unscored last). */
export function ranked(components: DecomposedView[], by: Ranking): DecomposedView[] {
  const key = (c: DecomposedView) => (by === 'score' ? (c.score ?? -Infinity) : c.norm);
  return [...components].sort((a, b) => key(b) - key(a));
}

/** Four significant decimals. */
export function num(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(4);
}

/** The [lo, hi] of a grid and the CLS value. */
export function gridRange(grid: number[][]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of grid)
    for (const v of row) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/** Overlay opacity of a value: norms from the grid's minimum to its maximum; signed values by |v| / max |v|. */
export function overlayAlpha(v: number, range: [number, number], signed: boolean): number {
  if (signed) {
    const m = Math.max(Math.abs(range[0]), Math.abs(range[1]));
    return m > 0 ? Math.min(1, Math.abs(v) / m) : 0;
  }
  const span = range[1] - range[0];
  return span > 0 ? Math.min(1, Math.max(0, (v - range[0]) / span)) : 0;
}
