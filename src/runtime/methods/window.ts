/** Restoration windows of a causal trace (pure: also imported by the trace webview). */

/** The layers restored for a window centred on `l` (ROME: [l - w/2, l + w/2) clipped). */
export function windowLayers(l: number, window: number, layers: number): number[] {
  const lo = Math.max(0, l - Math.floor(window / 2));
  const hi = Math.min(layers, l - Math.floor(-window / 2));
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}
