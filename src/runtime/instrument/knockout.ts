/**
 * Attention knockout (DESIGN.md section 4): an additive mask on the attention scores right
 * before an attention module's Softmax. Each masked Softmax gets a new graph input
 * `mechanist.scoremask.<i>` and reads `scores + mask` instead of `scores`. Fed a scalar 0 (the
 * default the runner feeds, see `patchDefaults`) the model is unchanged; fed
 * [batch, 1 or heads, query, key] with the dtype's minimum at some (query, key) cells, those
 * edges are blocked, and every batch row can block different edges.
 */
import type { OnnxGraph } from '../onnx/graph';
import { DataType } from '../onnx/types';
import type { NodeProto, ValueInfoProto } from '../onnx/types';
import { floatToHalf } from '../onnx/float16';
import type { HostTensor } from '../tensor';

/** The input added for one masked Softmax. */
export interface ScoreMaskInput {
  /** Graph input name of the additive mask. */
  input: string;
  /** Element type of the scores (and so of the mask). */
  elemType: number;
}

/** The element type of a value: recorded, else a Cast's target, else the producer's float input, else `dflt`. */
export function elemTypeOf(graph: OnnxGraph, value: string, dflt: number): number {
  const seen = new Set<string>();
  let v = value;
  for (let i = 0; i < 16 && !seen.has(v); i++) {
    seen.add(v);
    const known = graph.types.get(v)?.elemType;
    if (known) return known;
    const p = graph.producer.get(v);
    if (!p) break;
    if (p.op_type === 'Cast') return graph.attrInt(p, 'to', dflt) ?? dflt;
    if (['Add', 'Sub', 'Mul', 'Div', 'Where', 'MatMul', 'Softmax', 'Identity', 'Reshape', 'Transpose'].includes(p.op_type)) {
      // Where's first input is the condition; elsewhere the first input carries the type.
      v = p.op_type === 'Where' ? p.input[1] : p.input[0];
      continue;
    }
    break;
  }
  return dflt;
}

/**
 * Rewires the Softmax nodes producing `softmaxOutputs` (in `nodes`, a copy of the graph's
 * nodes) to read `scores + mask`; adds the mask inputs to `inputs`.
 */
export function addScoreMasks(graph: OnnxGraph, nodes: NodeProto[], inputs: ValueInfoProto[], softmaxOutputs: string[], floatType: number): Map<string, ScoreMaskInput> {
  const added = new Map<string, ScoreMaskInput>();
  [...new Set(softmaxOutputs)].forEach((out, i) => {
    const sm = nodes.find((n) => n.output[0] === out);
    if (!sm || sm.op_type !== 'Softmax') throw new Error(`"${out}" is not the output of a Softmax node: cannot mask the attention scores before it`);
    const scores = sm.input[0];
    const input = `mechanist.scoremask.${i}`;
    const masked = `${scores}::knockout.${i}`;
    const elemType = elemTypeOf(graph, scores, floatType);
    // No declared shape: a run feeds a scalar 0 or [batch, 1|heads, query, key].
    inputs.push({ name: input, type: { tensor_type: { elem_type: elemType } } });
    nodes.push({ name: `mechanist/knockout_${i}/Add`, op_type: 'Add', domain: '', input: [scores, input], output: [masked], attribute: [] });
    sm.input = [masked, ...sm.input.slice(1)];
    added.set(out, { input, elemType });
  });
  return added;
}

/** The most negative finite value of a float type (what "blocked" adds to a score). */
export function dtypeMin(elemType: number): number {
  switch (elemType) {
    case DataType.FLOAT16:
      return -65504;
    case DataType.DOUBLE:
      return -Number.MAX_VALUE;
    default:
      return -3.4028234663852886e38;
  }
}

/** One blocked edge set: in batch row `row`, query `query` may not attend to `keys`. */
export interface BlockedEdges {
  row: number;
  query: number;
  keys: number[];
}

/** A [batch, 1, seq, seq] additive mask: the dtype's minimum at every blocked (row, query, key), 0 elsewhere. */
export function knockoutMask(edges: BlockedEdges[], batch: number, seq: number, elemType: number): HostTensor {
  const n = batch * seq * seq;
  const min = dtypeMin(elemType);
  const set = (data: { [i: number]: number }, v: number): void => {
    for (const e of edges) {
      if (e.row < 0 || e.row >= batch) throw new Error(`knockout row ${e.row} is outside the batch of ${batch}`);
      if (e.query < 0 || e.query >= seq) throw new Error(`knockout query ${e.query} is outside the sequence of ${seq}`);
      for (const k of e.keys) {
        if (k < 0 || k >= seq) throw new Error(`knockout key ${k} is outside the sequence of ${seq}`);
        data[(e.row * seq + e.query) * seq + k] = v;
      }
    }
  };
  const dims = [batch, 1, seq, seq];
  if (elemType === DataType.FLOAT16) {
    const data = new Uint16Array(n);
    set(data, floatToHalf(min));
    return { type: 'float16', data, dims };
  }
  if (elemType === DataType.DOUBLE) {
    const data = new Float64Array(n);
    set(data, min);
    return { type: 'float64', data, dims };
  }
  const data = new Float32Array(n);
  set(data, min);
  return { type: 'float32', data, dims };
}
