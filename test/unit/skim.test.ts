import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModelError, OnnxModel, SKIM_MIN_FILE_BYTES } from '../../src/runtime/onnx/model';
import { onnxType } from '../../src/runtime/onnx/proto';
import { SkimError, skimModel } from '../../src/runtime/onnx/skim';
import { fixture, hasFixture } from './helpers/fixtures';

const T = onnxType('ModelProto');

/** The decoded proto as plain JSON, raw_data of initializers left out (compared separately). */
function withoutWeights(bytes: Uint8Array): unknown {
  const o = T.toObject(T.decode(bytes), { bytes: Array, longs: String, defaults: false }) as { graph: { initializer: { raw_data?: unknown }[] } };
  for (const t of o.graph.initializer) delete t.raw_data;
  return o;
}

for (const name of ['gpt2', 'llama', 'clip-vision', 'encdec']) {
  test(`${name}: a skimmed read decodes to the same model, the skipped weights where it says`, { skip: !hasFixture(name) && 'fixture not generated' }, () => {
    const file = fixture(name);
    const full = fs.readFileSync(file);
    const s = skimModel(file, 4096);
    assert.ok(s.skipped.size > 0, 'some weights were skipped');
    const skippedBytes = [...s.skipped.values()].reduce((n, at) => n + at.length, 0);
    assert.ok(s.bytes.length + skippedBytes <= full.length, `the copy (${s.bytes.length} bytes) holds none of the ${skippedBytes} skipped`);
    assert.deepEqual(withoutWeights(s.bytes), withoutWeights(full));
    const inits = (T.decode(full) as unknown as { graph: { initializer: { raw_data?: Uint8Array }[] } }).graph.initializer;
    for (const [i, at] of s.skipped) assert.deepEqual(full.subarray(at.offset, at.offset + at.length), Buffer.from(inits[i].raw_data!), `initializer ${i}`);
  });
}

/** A model with one 17 MB weight (above the size from which files are skimmed). */
function bigModel(): { file: string; weight: Float32Array } {
  const n = Math.ceil(SKIM_MIN_FILE_BYTES / 4 / 64) * 64 + 1024;
  const weight = Float32Array.from({ length: n }, (_, i) => (i % 97) / 7);
  const model = {
    ir_version: 8,
    opset_import: [{ domain: '', version: 17 }],
    graph: {
      name: 'big',
      node: [{ name: '/MatMul', op_type: 'MatMul', input: ['x', 'w'], output: ['y'] }],
      initializer: [{ name: 'w', dims: [64, n / 64], data_type: 1, raw_data: Buffer.from(weight.buffer) }],
      input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 1 }, { dim_value: 64 }] } } } }],
      output: [{ name: 'y', type: { tensor_type: { elem_type: 1 } } }],
    },
  };
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-skim-')), 'big.onnx');
  fs.writeFileSync(file, T.encode(T.fromObject(model)).finish());
  return { file, weight };
}

test('large files open without reading their weights; the weights read back on demand', () => {
  const { file, weight } = bigModel();
  const m = OnnxModel.load(file);
  const w = m.graph.initializer[0];
  assert.equal(w.raw_data, undefined, 'the weight is not in memory');
  assert.ok(m.inlineOffset(w), 'its place in the file is known');
  assert.deepEqual(m.tensorFloat32(w), weight);
  assert.equal(m.fileSize, fs.statSync(file).size);
});

test('a truncated large file: the skim stops, and the ordinary read names the truncation', () => {
  const { file } = bigModel();
  const cut = file.replace('big.onnx', 'cut.onnx');
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
  assert.ok(bytes.length - 1000 >= SKIM_MIN_FILE_BYTES, 'still large enough to be skimmed');
  assert.throws(() => skimModel(cut, 4096), SkimError);
  assert.throws(() => OnnxModel.load(cut), (e: unknown) => e instanceof ModelError && /truncated/.test(e.message));
});

/** Protobuf bytes of field `field` (length-delimited) holding `payload`. */
function lengthDelimited(field: number, payload: Uint8Array): Buffer {
  const varint = (v: number): number[] => {
    const out: number[] = [];
    while (v >= 0x80) {
      out.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    return [...out, v];
  };
  return Buffer.concat([Buffer.from(varint(field * 8 + 2)), Buffer.from(varint(payload.length)), payload]);
}

test('a tensor whose raw_data occurs twice (a large one, then a small one) reads as the last, as protobuf merges scalar fields', () => {
  const n = Math.ceil(SKIM_MIN_FILE_BYTES / 4) + 1024;
  const big = Buffer.from(Float32Array.from({ length: n }, () => 7).buffer);
  const small = Float32Array.from([1, 2, 3, 4]);
  const Tensor = onnxType('TensorProto');
  const Graph = onnxType('GraphProto');
  const tensor = Buffer.concat([Buffer.from(Tensor.encode(Tensor.fromObject({ name: 'w', dims: [4], data_type: 1, raw_data: big })).finish()), lengthDelimited(9, new Uint8Array(small.buffer))]);
  const graph = Buffer.concat([
    Buffer.from(
      Graph.encode(
        Graph.fromObject({
          name: 'g',
          node: [{ name: '/Add', op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
          input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 4 }] } } } }],
          output: [{ name: 'y', type: { tensor_type: { elem_type: 1 } } }],
        }),
      ).finish(),
    ),
    lengthDelimited(5, tensor),
  ]);
  const bytes = Buffer.concat([Buffer.from(T.encode(T.fromObject({ ir_version: 8, opset_import: [{ domain: '', version: 17 }] })).finish()), lengthDelimited(7, graph)]);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-skim-')), 'twice.onnx');
  fs.writeFileSync(file, bytes);
  assert.deepEqual(Buffer.from((T.decode(bytes) as unknown as { graph: { initializer: { raw_data: Uint8Array }[] } }).graph.initializer[0].raw_data), Buffer.from(small.buffer), 'the decoder keeps the last');
  const m = OnnxModel.load(file);
  assert.deepEqual(m.tensorFloat32(m.graph.initializer[0]), small);
});

test('a large file whose graph field is split in two (protobuf merges them) opens with every node and weight', () => {
  const { file, weight } = bigModel();
  const full = T.decode(fs.readFileSync(file)) as unknown as { graph: Record<string, unknown> };
  const Graph = onnxType('GraphProto');
  const g = full.graph;
  // First part: nodes, inputs and outputs; second part: the initializers.
  const first = Graph.encode(Graph.fromObject({ ...T.toObject(full as never).graph, initializer: [] })).finish();
  const second = Graph.encode(Graph.fromObject({ initializer: (T.toObject(full as never).graph as { initializer: unknown[] }).initializer })).finish();
  const split = Buffer.concat([Buffer.from(T.encode(T.fromObject({ ir_version: 8, opset_import: [{ domain: '', version: 17 }] })).finish()), lengthDelimited(7, first), lengthDelimited(7, second)]);
  const out = file.replace('big.onnx', 'split.onnx');
  fs.writeFileSync(out, split);
  assert.ok(g);
  const m = OnnxModel.load(out);
  assert.equal(m.graph.node.length, 1);
  assert.equal(m.graph.initializer.length, 1);
  assert.deepEqual(m.tensorFloat32(m.graph.initializer[0]), weight);
});
