/** Tensors on the host, independent of onnxruntime's classes (methods and tests use these). */
import { floatToHalf, halfToFloat } from './onnx/float16';

export type TensorType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8' | 'float64' | 'int8';

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array | Int8Array;

/** A dense row-major tensor. float16 data is stored as Uint16Array bit patterns. */
export interface HostTensor {
  type: TensorType;
  data: TensorData;
  dims: number[];
}

/** Product of dims. */
export function size(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** A float32 tensor. */
export function f32(data: Float32Array | number[], dims: number[]): HostTensor {
  const d = data instanceof Float32Array ? data : Float32Array.from(data);
  if (d.length !== size(dims)) throw new Error(`float32 tensor: ${d.length} values do not fill dims [${dims.join(', ')}]`);
  return { type: 'float32', data: d, dims };
}

/** An int64 tensor from numbers. */
export function i64(data: number[] | BigInt64Array, dims: number[]): HostTensor {
  const d = data instanceof BigInt64Array ? data : BigInt64Array.from(data, (x) => BigInt(x));
  return { type: 'int64', data: d, dims };
}

/** Row `r` of the leading axis as a float32 view (no copy for float32 data). */
export function row(t: HostTensor, r: number): Float32Array {
  const n = size(t.dims.slice(1));
  if (!(t.data instanceof Float32Array)) throw new Error(`expected float32 data, got ${t.type}`);
  return t.data.subarray(r * n, (r + 1) * n);
}

/** The values of a float tensor as float32 (float16 bits are widened; float32 data is returned as is). */
export function asFloat32(t: HostTensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.type === 'float16') return Float32Array.from(t.data as Uint16Array, halfToFloat);
  return Float32Array.from(t.data as ArrayLike<number>);
}

/** A float tensor of `type` (float32 or float16) from float32 values. */
export function fromFloat32(values: Float32Array, dims: number[], type: TensorType): HostTensor {
  if (type === 'float16') return { type, data: Uint16Array.from(values, floatToHalf), dims };
  return { type: 'float32', data: values, dims };
}

/** Softmax of one row of logits, in float64 for accuracy. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** Index of the largest value (the first, on ties). */
export function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

/** Cosine similarity of two vectors (1 when both are zero: the same vector; 0 when one is). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa === 0 && bb === 0) return 1;
  return ab / Math.sqrt(aa * bb || 1);
}

/** Positions [from, to) of `axis` (negative: from the end), every other axis whole. */
export function sliceAxis(t: HostTensor, axis: number, from: number, to: number): HostTensor {
  const a = axis < 0 ? axis + t.dims.length : axis;
  const outer = size(t.dims.slice(0, a));
  const inner = size(t.dims.slice(a + 1));
  const n = t.dims[a];
  const len = to - from;
  const Ctor = t.data.constructor as new (n: number) => TensorData;
  const data = new Ctor(outer * len * inner);
  const src = t.data as Float32Array;
  for (let o = 0; o < outer; o++) (data as Float32Array).set(src.subarray((o * n + from) * inner, (o * n + to) * inner), o * len * inner);
  return { type: t.type, data, dims: t.dims.map((d, i) => (i === a ? len : d)) };
}

/** `rows` rows that repeat the rows of `t` (axis 0) in order: row r is t's row r mod t.dims[0]. */
export function tileRows(t: HostTensor, rows: number): HostTensor {
  const have = t.dims[0];
  const per = t.data.length / have;
  const Ctor = t.data.constructor as new (n: number) => TensorData;
  const data = new Ctor(rows * per);
  const src = t.data as Float32Array;
  for (let r = 0; r < rows; r++) (data as Float32Array).set(src.subarray((r % have) * per, ((r % have) + 1) * per), r * per);
  return { type: t.type, data, dims: [rows, ...t.dims.slice(1)] };
}
