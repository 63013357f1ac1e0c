/**
 * Head count and head size from the graph itself: the Reshape that splits a projection's
 * output into heads carries [..., heads, headDim] in its (partly constant) shape input, and
 * fused attention ops carry `num_heads` attributes. Nothing is guessed from widths alone.
 */
import type { NodeProto } from '../onnx/types';
import type { ModuleIndex } from './modules';

export interface HeadSplit {
  heads: number;
  headDim: number;
}

/**
 * Follows the projection's output forward (inside `scope`) to the first Reshape that splits
 * it into heads. `widths` are the per-projection widths the split must multiply out to
 * (a fused qkv projection is split three ways before the head Reshape).
 */
export function headSplit(idx: ModuleIndex, from: string[], scope: Set<NodeProto>, widths: number[]): HeadSplit | undefined {
  const g = idx.graph;
  const queue = [...from];
  const seen = new Set<string>(queue);
  for (let steps = 0; queue.length && steps < 64; steps++) {
    const v = queue.shift()!;
    for (const c of g.consumers.get(v) ?? []) {
      if (!scope.has(c)) continue;
      if (c.op_type === 'Reshape' && c.input[0] === v) {
        const split = splitFromShape(g.constantValues(c.input[1], true), widths);
        if (split) return split;
      }
      // Keep walking through the ops that sit between a projection and its head split.
      if (['Add', 'Split', 'Slice', 'Mul', 'Div', 'Cast', 'Identity', 'Gather'].includes(c.op_type)) {
        for (const o of c.output) {
          if (o && !seen.has(o)) {
            seen.add(o);
            queue.push(o);
          }
        }
      }
    }
  }
  return undefined;
}

/**
 * Reads [..., H, Dh] from a Reshape target whose H*Dh equals one of the widths. The head size
 * may itself be split further (rotary pairs: [b, s, H, Dh/2, 2]), so Dh is the product of
 * everything after H. A -1 in H's place is solved from the width.
 */
export function splitFromShape(shape: number[] | undefined, widths: number[]): HeadSplit | undefined {
  if (!shape || shape.length < 3) return undefined;
  for (let i = 1; i < shape.length - 1; i++) {
    const rest = shape.slice(i + 1);
    if (!rest.every((d) => Number.isFinite(d) && d > 0)) continue;
    const d = rest.reduce((a, b) => a * b, 1);
    const h = shape[i];
    for (const w of widths) {
      if (Number.isFinite(h) && h > 0 && h * d === w) return { heads: h, headDim: d };
      if (h === -1 && w % d === 0 && i === shape.length - 2) return { heads: w / d, headDim: d };
    }
  }
  return undefined;
}
