/**
 * The pieces the rewrites (suffix.ts, restart.ts, lastMlp.ts) build graphs from: nodes,
 * attributes, subgraphs, int64 constants and the two-branch `If` they all use.
 */
import { bytesPerElement, DataType } from '../onnx/types';
import type { AttributeProto, GraphProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/types';

export function attr(name: string, fields: Partial<AttributeProto>): AttributeProto {
  return { name, type: 0, floats: [], ints: [], strings: [], tensors: [], graphs: [], ...fields } as AttributeProto;
}

export function node(name: string, op: string, input: string[], output: string[], attribute: AttributeProto[] = []): NodeProto {
  return { name, op_type: op, domain: '', input, output, attribute };
}

export function graph(name: string, nodes: NodeProto[], outputs: ValueInfoProto[], initializer: TensorProto[] = []): GraphProto {
  return { name, node: nodes, input: [], output: outputs, initializer, value_info: [] };
}

/** A tensor value's declaration with only its element type (shapes vary from run to run). */
export function typed(name: string, elemType: number): ValueInfoProto {
  return { name, type: { tensor_type: { elem_type: elemType } } };
}

function tensor(name: string, dataType: number, dims: number[], raw: Uint8Array): TensorProto {
  return { name, data_type: dataType, dims, raw_data: raw, float_data: [], int32_data: [], int64_data: [], double_data: [], uint64_data: [], string_data: [], external_data: [] };
}

/** A 1-D int64 constant. */
export function int64s(name: string, values: bigint[]): TensorProto {
  return tensor(name, DataType.INT64, [values.length], new Uint8Array(BigInt64Array.from(values).buffer));
}

/** A scalar int64 constant. */
export function int64Scalar(name: string, value: bigint): TensorProto {
  return tensor(name, DataType.INT64, [], new Uint8Array(BigInt64Array.from([value]).buffer));
}

/** A zero scalar of an element type. */
export function zeroScalar(name: string, elemType: number): TensorProto {
  return tensor(name, elemType, [], new Uint8Array(bytesPerElement(elemType) || 4));
}

/**
 * `output = If(cond, then: thenNodes giving thenOut, else: elseIn as it is)`, the branches
 * reading the outer graph's values by name.
 */
export function ifNode(name: string, cond: string, output: string, elemType: number, thenNodes: NodeProto[], thenOut: string, elseIn: string): NodeProto {
  const elseOut = `${output}::else`;
  return node(name, 'If', [cond], [output], [
    attr('then_branch', { type: 5, g: graph(`${name}_then`, thenNodes, [typed(thenOut, elemType)]) }),
    attr('else_branch', { type: 5, g: graph(`${name}_else`, [node(`${name}/else/Identity`, 'Identity', [elseIn], [elseOut])], [typed(elseOut, elemType)]) }),
  ]);
}
