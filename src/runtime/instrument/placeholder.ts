/**
 * A zero scalar of an ONNX element type: what the runner feeds an input the rewrite added when
 * that input is not in use this run (a patch mask that is off, a restart entry or a suffix
 * prefix that is not read). A scalar broadcasts, or goes unread, without building a buffer.
 */
import { DataType } from '../onnx/types';
import type { HostTensor } from '../tensor';

export function placeholder(dataType: number): HostTensor {
  switch (dataType) {
    case DataType.BOOL:
      return { type: 'bool', data: new Uint8Array(1), dims: [] };
    case DataType.FLOAT16:
      return { type: 'float16', data: new Uint16Array(1), dims: [] };
    case DataType.DOUBLE:
      return { type: 'float64', data: new Float64Array(1), dims: [] };
    case DataType.INT32:
      return { type: 'int32', data: new Int32Array(1), dims: [] };
    case DataType.INT64:
      return { type: 'int64', data: new BigInt64Array(1), dims: [] };
    case DataType.UINT8:
      return { type: 'uint8', data: new Uint8Array(1), dims: [] };
    default:
      return { type: 'float32', data: new Float32Array(1), dims: [] };
  }
}
