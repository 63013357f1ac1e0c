/** Pure text helpers of the attention panel: token labels, numbers, percentages. */

/** A token made visible in a label: line breaks and tabs as symbols, empty as ∅. */
export function tokenText(s: string): string {
  const t = s.replace(/\r?\n/g, '↵').replace(/\t/g, '⇥');
  return t.length ? t : '∅';
}

/** A token quoted for prose (tooltips, aria labels): ' is'. */
export function quoteToken(s: string): string {
  return `'${tokenText(s)}'`;
}

/** Fixed decimals, '–' for non-finite values. */
export function num(v: number, digits = 4): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '–';
}

/** A probability in a compact cell: 0.93, 0.057, 3e-4. */
export function prob(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (v >= 0.095) return v.toFixed(2);
  if (v >= 0.001) return v.toFixed(3);
  return v === 0 ? '0' : v.toExponential(0);
}

/** A relative change as a signed percentage: -29.5%. */
export function pct(v: number, digits = 1): string {
  if (!Number.isFinite(v)) return '–';
  const s = (v * 100).toFixed(digits);
  return `${v > 0 ? '+' : ''}${s}%`;
}

/** Index of the largest value (first on ties); -1 when empty. */
export function argmax(values: readonly number[]): number {
  let best = -1;
  values.forEach((v, i) => {
    if (best < 0 || v > values[best]) best = i;
  });
  return best;
}
