/** Builds tiny ONNX models in memory for tests of the model layer (no torch needed). */
import { onnxType } from '../../../src/runtime/onnx/proto';

export interface TinyOptions {
  /** Put the weight in an external data file at this location (relative to the model). */
  externalLocation?: string;
  externalOffset?: number;
}

/** y = x @ W + b with x: [batch, 2], W: 2x3 (values 1..6), b: [0.5, -0.5, 1]. Returns the model bytes. */
export function tinyLinearModel(opts: TinyOptions = {}): { bytes: Uint8Array; weightBytes: Buffer } {
  const w = new Float32Array([1, 2, 3, 4, 5, 6]);
  const weightBytes = Buffer.from(w.buffer);
  const weight: Record<string, unknown> = { name: 'linear.weight', dims: [2, 3], data_type: 1 };
  if (opts.externalLocation !== undefined) {
    weight.data_location = 1;
    weight.external_data = [
      { key: 'location', value: opts.externalLocation },
      { key: 'offset', value: String(opts.externalOffset ?? 0) },
      { key: 'length', value: String(weightBytes.length) },
    ];
  } else {
    weight.raw_data = weightBytes;
  }
  const bias = { name: 'linear.bias', dims: [3], data_type: 1, raw_data: Buffer.from(new Float32Array([0.5, -0.5, 1]).buffer) };
  const tensorType = (dims: (number | string)[]) => ({
    tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } },
  });
  const model = {
    ir_version: 8,
    opset_import: [{ domain: '', version: 17 }],
    producer_name: 'mechanist-test',
    graph: {
      name: 'tiny',
      node: [
        { name: '/linear/MatMul', op_type: 'MatMul', input: ['x', 'linear.weight'], output: ['/linear/MatMul_output_0'] },
        { name: '/linear/Add', op_type: 'Add', input: ['/linear/MatMul_output_0', 'linear.bias'], output: ['y'] },
      ],
      initializer: [weight, bias],
      input: [{ name: 'x', type: tensorType(['batch', 2]) }],
      output: [{ name: 'y', type: tensorType(['batch', 3]) }],
    },
  };
  const T = onnxType('ModelProto');
  return { bytes: T.encode(T.fromObject(model)).finish(), weightBytes };
}
