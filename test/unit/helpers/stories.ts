/** stories260K from ../shared/models (llama2.c weights, no tokenizer), and variants of it built in memory. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { floatToHalf } from '../../../src/runtime/onnx/float16';
import { OnnxModel } from '../../../src/runtime/onnx/model';
import { DataType } from '../../../src/runtime/onnx/types';
import type { AttributeProto, NodeProto } from '../../../src/runtime/onnx/types';
import type { TextTokenizer } from '../../../src/runtime/tokenizer';
import { SHARED_MODELS } from './fixtures';

export const STORIES = path.join(SHARED_MODELS, 'stories260K/stories260K.onnx');
export const hasStories = (): boolean => fs.existsSync(STORIES);

/** stories260K in float16; with `upcastScores`, its attention scores computed in float32 (queries and keys cast up before their MatMul). */
export function float16Stories(upcastScores = false): OnnxModel {
  const model = OnnxModel.load(STORIES);
  const g = model.graph;
  g.initializer = g.initializer.map((x) => {
    if (x.data_type !== DataType.FLOAT) return x;
    const v = model.tensorFloat32(x);
    return { ...x, data_type: DataType.FLOAT16, raw_data: new Uint8Array(Uint16Array.from(v, floatToHalf).buffer), float_data: [] };
  });
  for (const v of [...g.output, ...g.value_info]) if (v.type?.tensor_type?.elem_type === DataType.FLOAT) v.type.tensor_type.elem_type = DataType.FLOAT16;
  if (!upcastScores) return model;
  const cast = (name: string, from: string, to: number): NodeProto => ({ name, op_type: 'Cast', domain: '', input: [from], output: [`${from}::${to}`], attribute: [{ name: 'to', type: 2, i: to, floats: [], ints: [], strings: [], tensors: [], graphs: [] } as unknown as AttributeProto] });
  for (const mm of g.node.filter((n) => n.op_type === 'MatMul' && /attention\/MatMul$/.test(n.name ?? ''))) {
    const [q, k] = mm.input as [string, string];
    const out = mm.output[0] as string;
    const up = [cast(`${mm.name}/CastQ`, q, DataType.FLOAT), cast(`${mm.name}/CastK`, k, DataType.FLOAT)];
    mm.input = up.map((c) => c.output[0]);
    mm.output = [`${out}::f32`];
    const down = { ...cast(`${mm.name}/CastS`, `${out}::f32`, DataType.FLOAT16), output: [out] };
    g.node.splice(g.node.indexOf(mm), 1, ...up, mm, down);
  }
  return model;
}

/** A tokenizer over raw ids for a model without one: "12 34 56" <-> [12, 34, 56]. */
export function rawIdTokenizer(): TextTokenizer {
  const words = (s: string): number[] => s.trim().split(/\s+/).map(Number);
  return {
    encode: (s: string) => words(s),
    decode: (ids: number[]) => ids.join(' '),
    tokenStrings: (ids: number[]) => ids.map(String),
    findSpan: (ids: number[], sub: string): [number, number] => {
      const w = words(sub);
      for (let i = 0; i + w.length <= ids.length; i++) if (w.every((x, j) => ids[i + j] === x)) return [i, i + w.length];
      throw new Error(`"${sub}" is not in the prompt`);
    },
    continuationToken: (_p: string, t: string) => Number(t.trim()),
  } as unknown as TextTokenizer;
}
