/** Tensors on the host, independent of onnxruntime's classes (methods and tests use these). */

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
