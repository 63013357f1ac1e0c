/** Standard feeds for a text model: ids, attention mask, token types and positions as the graph names them. */
import type { OnnxGraph } from './onnx/graph';
import { DataType } from './onnx/types';
import type { HostTensor } from './tensor';

/** An input the caller must provide that we cannot make up. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/** Integer-valued feed `name` in the element type the graph declares for it (int64 when it does not say). */
export function intTensor(graph: OnnxGraph, name: string, values: number[], dims: number[]): HostTensor {
  const t = graph.types.get(name)?.elemType;
  if (t === DataType.INT32) return { type: 'int32', data: Int32Array.from(values), dims };
  if (t === DataType.BOOL) return { type: 'bool', data: Uint8Array.from(values), dims };
  if (t === DataType.FLOAT) return { type: 'float32', data: Float32Array.from(values), dims };
  return { type: 'int64', data: BigInt64Array.from(values, (v) => BigInt(v)), dims };
}

const ID_INPUTS = ['input_ids', 'decoder_input_ids'];

/**
 * Feeds for `rows` of token ids (all the same length): `input_ids` plus an all-ones attention
 * mask, zero token types and 0..S-1 positions for whichever of those inputs the graph has.
 */
export function textFeeds(graph: OnnxGraph, rows: number[][], extra: Record<string, HostTensor> = {}): Record<string, HostTensor> {
  const B = rows.length;
  const S = rows[0]?.length ?? 0;
  if (B === 0 || S === 0) throw new InputError('no tokens to run');
  if (rows.some((r) => r.length !== S)) throw new InputError('all rows of a batch must have the same number of tokens');
  const feeds: Record<string, HostTensor> = { ...extra };
  const names = graph.inputs.map((i) => i.name);
  const idName = names.find((n) => ID_INPUTS.includes(n)) ?? names.find((n) => /ids$/.test(n) && !/position|type/.test(n));
  if (!idName) throw new InputError(`the model has no token-id input (inputs: ${names.join(', ')})`);
  feeds[idName] ??= intTensor(graph, idName, rows.flat(), [B, S]);
  for (const n of names) {
    if (n in feeds) continue;
    if (/attention_mask|input_mask/.test(n)) feeds[n] = intTensor(graph, n, new Array(B * S).fill(1), [B, S]);
    else if (/token_type_ids|segment_ids/.test(n)) feeds[n] = intTensor(graph, n, new Array(B * S).fill(0), [B, S]);
    else if (/position_ids/.test(n)) feeds[n] = intTensor(graph, n, Array.from({ length: B * S }, (_, i) => i % S), [B, S]);
    else if (/past/.test(n)) feeds[n] = emptyPast(graph, n, B);
    else throw new InputError(`the model needs input "${n}", which Mechanist cannot fill for a text prompt`);
  }
  return feeds;
}

/**
 * An empty KV cache for a `past_key_values.*` / `past_*` input: its past-sequence dimension is 0,
 * the batch dimension B, the others as declared. Exports with a cache then run the whole prompt
 * as if it were the first step.
 */
function emptyPast(graph: OnnxGraph, name: string, B: number): HostTensor {
  const t = graph.types.get(name);
  const shape = t?.shape;
  if (!shape) throw new InputError(`the model's cache input "${name}" has no declared shape; re-export without past_key_values`);
  let pastAxis = shape.findIndex((d) => typeof d === 'string' && /past|cache/i.test(d));
  if (pastAxis < 0) pastAxis = shape.findIndex((d) => typeof d === 'string' && /seq|len/i.test(d));
  if (pastAxis < 0) throw new InputError(`cannot tell which axis of "${name}" is the past sequence (${shape.join(', ')}); re-export without past_key_values`);
  const dims = shape.map((d, i) => (i === pastAxis ? 0 : typeof d === 'number' ? d : /batch/i.test(String(d)) ? B : 1));
  if (t.elemType === DataType.FLOAT16) return { type: 'float16', data: new Uint16Array(0), dims };
  return { type: 'float32', data: new Float32Array(0), dims };
}
