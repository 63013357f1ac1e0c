/**
 * Reading the weights of discovered linear layers as float64 matrices, for the methods that
 * compute with them on the host (head contributions, decomposition).
 */
import type { AttentionInfo, LinearInfo } from '../architecture/types';
import { InputError } from '../feeds';
import type { HookedModel } from '../instrument/hookedModel';

/** A linear layer's weight as a float64 [in][out] matrix (row-major `in x out`). */
export function weightInOut(hooked: HookedModel, lin: LinearInfo): Float64Array {
  const t = hooked.graph.initializers.get(lin.weight);
  if (!t) throw new InputError(`weight ${lin.weight} is not an initializer`);
  const w = hooked.model.tensorFloat32(t);
  const I = lin.inFeatures;
  const O = lin.outFeatures;
  if (w.length !== I * O) throw new InputError(`weight ${lin.weight} has ${w.length} values, expected ${I} x ${O}`);
  const out = new Float64Array(I * O);
  if (lin.transposed) for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) out[i * O + o] = w[o * I + i];
  else for (let k = 0; k < I * O; k++) out[k] = w[k];
  return out;
}

/** An initializer's values (through Identity/Cast) as float64, when `name` names one. */
export function initializerValues(hooked: HookedModel, name: string | undefined): Float64Array | undefined {
  if (!name) return undefined;
  const t = hooked.graph.initializerOf(name);
  return t ? Float64Array.from(hooked.model.tensorFloat32(t)) : undefined;
}

/** The value projection of an attention module: [in][kvHeads * headDim] weight and bias (sliced from a fused qkv). */
export function valueProjection(hooked: HookedModel, a: AttentionInfo, layer: number): { lin: LinearInfo; w: Float64Array; b?: Float64Array; width: number } {
  const width = a.kvHeads * a.headDim;
  if (a.v) {
    if (a.v.outFeatures !== width) throw new InputError(`block ${layer}'s value projection has ${a.v.outFeatures} outputs, expected ${a.kvHeads} KV heads x ${a.headDim}`);
    return { lin: a.v, w: weightInOut(hooked, a.v), b: initializerValues(hooked, a.v.bias), width };
  }
  if (!a.qkv) throw new InputError(`block ${layer}'s attention has no value projection that discovery could find`);
  const q = a.heads * a.headDim;
  const O = a.qkv.outFeatures;
  if (O !== q + 2 * width) throw new InputError(`block ${layer}'s fused qkv projection has ${O} outputs, expected ${q} + 2 x ${width}`);
  const full = weightInOut(hooked, a.qkv);
  const I = a.qkv.inFeatures;
  const off = q + width; // [q | k | v]
  const w = new Float64Array(I * width);
  for (let i = 0; i < I; i++) for (let c = 0; c < width; c++) w[i * width + c] = full[i * O + off + c];
  return { lin: a.qkv, w, b: initializerValues(hooked, a.qkv.bias)?.slice(off, off + width), width };
}
