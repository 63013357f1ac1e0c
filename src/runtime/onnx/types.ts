/**
 * TypeScript views of the decoded ONNX messages (protobufjs objects with keepCase field
 * names). int64 fields decode to `Long` objects; use `toNumber` to read them.
 */
import type Long from 'long';

export type Int64 = number | Long;

/** ONNX TensorProto.DataType values. */
export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
}

/** AttributeProto.AttributeType values. */
export enum AttributeType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
  SPARSE_TENSOR = 11,
  SPARSE_TENSORS = 12,
  TYPE_PROTO = 13,
  TYPE_PROTOS = 14,
}

export interface StringStringEntry {
  key: string;
  value: string;
}

export interface TensorProto {
  dims: Int64[];
  data_type: number;
  name: string;
  raw_data?: Uint8Array;
  float_data: number[];
  int32_data: number[];
  int64_data: Int64[];
  double_data: number[];
  uint64_data: Int64[];
  string_data: Uint8Array[];
  external_data: StringStringEntry[];
  data_location?: number;
  doc_string?: string;
}

export interface AttributeProto {
  name: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute: AttributeProto[];
  doc_string?: string;
}

export interface Dimension {
  dim_value?: Int64;
  dim_param?: string;
}

export interface TypeProto {
  tensor_type?: { elem_type?: number; shape?: { dim: Dimension[] } };
}

export interface ValueInfoProto {
  name: string;
  type?: TypeProto;
  doc_string?: string;
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
}

export interface OperatorSetId {
  domain?: string;
  version: Int64;
}

export interface ModelProto {
  ir_version: Int64;
  opset_import: OperatorSetId[];
  producer_name?: string;
  producer_version?: string;
  graph?: GraphProto;
  metadata_props: StringStringEntry[];
}

/** Reads an int64 field (a protobufjs Long or a number) as a JS number. */
export function toNumber(v: Int64 | undefined | null): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** Bytes per element of a data type, or 0 for variable-size types. */
export function bytesPerElement(t: number): number {
  switch (t) {
    case DataType.FLOAT:
    case DataType.INT32:
    case DataType.UINT32:
      return 4;
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.BOOL:
      return 1;
    case DataType.UINT16:
    case DataType.INT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return 2;
    case DataType.INT64:
    case DataType.UINT64:
    case DataType.DOUBLE:
    case DataType.COMPLEX64:
      return 8;
    case DataType.COMPLEX128:
      return 16;
    default:
      return 0;
  }
}

/** Lower-case name of a data type, as onnxruntime-node spells tensor types. */
export function dataTypeName(t: number): string {
  return (DataType[t] ?? `type${t}`).toLowerCase();
}
