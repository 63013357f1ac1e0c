import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { discover } from '../../src/runtime/architecture/discover';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { ModelError, OnnxModel, SKIM_MIN_FILE_BYTES } from '../../src/runtime/onnx/model';
import { onnxType } from '../../src/runtime/onnx/proto';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { tinyLinearModel } from './helpers/tinyModel';

const SHARED = path.resolve(__dirname, '../../../../shared/models');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-model-'));
}

async function run(file: string | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const s = typeof file === 'string' ? await ort.InferenceSession.create(file) : await ort.InferenceSession.create(file);
  const out = await s.run(feeds);
  await s.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

test('reads an inline model: weights are views into the file buffer', () => {
  const dir = tmpDir();
  const { bytes } = tinyLinearModel();
  fs.writeFileSync(path.join(dir, 'm.onnx'), bytes);
  const m = OnnxModel.load(path.join(dir, 'm.onnx'));
  const g = OnnxGraph.build(m);
  const w = g.initializers.get('linear.weight')!;
  assert.deepEqual(Array.from(m.tensorFloat32(w)), [1, 2, 3, 4, 5, 6]);
  assert.equal(m.opset, 17);
  assert.equal(g.inputs.map((i) => i.name).join(), 'x');
  assert.deepEqual(g.shape('y'), ['batch', 3]);
  assert.equal(g.producer.get('y')!.op_type, 'Add');
  assert.deepEqual(g.topological().map((n) => n.op_type), ['MatMul', 'Add']);
});

test('external data is read relative to the model folder', async () => {
  const dir = tmpDir();
  const { bytes, weightBytes } = tinyLinearModel({ externalLocation: 'weights.bin', externalOffset: 16 });
  fs.writeFileSync(path.join(dir, 'm.onnx'), bytes);
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.concat([Buffer.alloc(16), weightBytes]));
  const m = OnnxModel.load(path.join(dir, 'm.onnx'));
  assert.ok(m.hasExternalData);
  assert.deepEqual(m.externalFiles(), [path.join(dir, 'weights.bin')]);
  const w = OnnxGraph.build(m).initializers.get('linear.weight')!;
  assert.deepEqual(Array.from(m.tensorFloat32(w)), [1, 2, 3, 4, 5, 6]);
  const out = await run(path.join(dir, 'm.onnx'), { x: new ort.Tensor('float32', new Float32Array([1, 1]), [1, 2]) });
  assert.deepEqual(Array.from(out.y), [5.5, 6.5, 10]);
});

for (const [location, why] of [
  ['/etc/passwd', /absolute path/],
  ['../outside.bin', /escapes the model's folder/],
  ['sub/../../outside.bin', /escapes the model's folder/],
] as const) {
  test(`external data location "${location}" is refused`, () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'm.onnx'), tinyLinearModel({ externalLocation: location }).bytes);
    assert.throws(() => OnnxModel.load(path.join(dir, 'm.onnx')), (e: Error) => e instanceof ModelError && why.test(e.message));
  });
}

test('a missing or short external data file is a clear error', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'm.onnx'), tinyLinearModel({ externalLocation: 'weights.bin' }).bytes);
  assert.throws(() => OnnxModel.load(path.join(dir, 'm.onnx')), /weights\.bin .*is missing/);
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.alloc(8));
  assert.throws(() => OnnxModel.load(path.join(dir, 'm.onnx')), /weights\.bin is truncated/);
});

test('empty, truncated, corrupt and non-ONNX files give one-line errors', () => {
  const dir = tmpDir();
  const { bytes } = tinyLinearModel();
  const cases: [string, Uint8Array | string, RegExp][] = [
    ['empty.onnx', new Uint8Array(0), /is empty \(0 bytes\)/],
    ['truncated.onnx', bytes.subarray(0, Math.floor(bytes.length * 0.6)), /truncated or corrupt/],
    ['corrupt.onnx', Uint8Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % 256), /not a valid ONNX model|truncated or corrupt|not an ONNX model/],
    ['readme.onnx', '# not a model\nhello world\n', /not a valid ONNX model|not an ONNX model|truncated or corrupt/],
  ];
  for (const [name, content, re] of cases) {
    fs.writeFileSync(path.join(dir, name), content);
    assert.throws(
      () => OnnxModel.load(path.join(dir, name)),
      (e: Error) => e instanceof ModelError && re.test(e.message) && !e.message.includes('\n'),
      name,
    );
  }
  assert.throws(() => OnnxModel.load(path.join(dir, 'absent.onnx')), /no such file/);
  assert.throws(() => OnnxModel.load(dir), /is a folder/);
});

test('save() refuses to overwrite the original and writes atomically', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'm.onnx');
  const { bytes } = tinyLinearModel();
  fs.writeFileSync(file, bytes);
  const m = OnnxModel.load(file);
  assert.throws(() => m.save(file), /refusing to overwrite/);
  assert.deepEqual(fs.readFileSync(file), Buffer.from(bytes));
  m.save(path.join(dir, 'copy.onnx'));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['copy.onnx', 'm.onnx']);
  assert.throws(() => m.save(path.join(dir, 'no/such/dir/x.onnx')), /cannot write/);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['copy.onnx', 'm.onnx']);
});

test('round trip of a real third-party model gives identical outputs in onnxruntime', { skip: !fs.existsSync(SHARED) && 'shared models absent' }, async () => {
  const file = path.join(SHARED, 'stories260K/stories260K.onnx');
  const m = OnnxModel.load(file);
  const encoded = m.encode();
  assert.equal(Buffer.compare(Buffer.from(encoded), fs.readFileSync(file)), 0, 'byte-identical re-encoding');
  const ids = new ort.Tensor('int64', BigInt64Array.from([1n, 50n, 300n, 7n]), [1, 4]);
  const a = await run(file, { input_ids: ids });
  const b = await run(encoded, { input_ids: ids });
  assert.deepEqual(a.logits, b.logits);
});

// A tensor marked external may still carry raw_data (a stale copy): onnxruntime reads the external
// data, and so must every session built from a rewritten graph (which reads inline weights from
// the original file). Small files are read whole; large ones are skimmed (skim.ts).
for (const [label, n] of [['read whole', 2048], ['skimmed', SKIM_MIN_FILE_BYTES / 4 + 1024]] as const) {
  test(`a weight marked external that also has raw_data: the external data counts, as in onnxruntime (${label})`, async (t) => {
    const dir = tmpDir();
    const external = Float32Array.from({ length: n }, (_, i) => i % 5);
    const stale = Float32Array.from({ length: n }, () => -1);
    fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.from(external.buffer));
    const T = onnxType('ModelProto');
    const proto = {
      ir_version: 8,
      opset_import: [{ domain: '', version: 17 }],
      graph: {
        name: 'g',
        node: [{ name: '/Add', op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
        initializer: [{ name: 'w', dims: [n], data_type: 1, raw_data: Buffer.from(stale.buffer), data_location: 1, external_data: [{ key: 'location', value: 'w.bin' }, { key: 'length', value: String(n * 4) }] }],
        input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: n }] } } } }],
        output: [{ name: 'y', type: { tensor_type: { elem_type: 1 } } }],
      },
    };
    const file = path.join(dir, 'm.onnx');
    fs.writeFileSync(file, T.encode(T.fromObject(proto)).finish());
    const x = new Float32Array(n);
    const want = (await run(file, { x: new ort.Tensor('float32', x, [n]) })).y;
    assert.equal(want[1], 1, 'onnxruntime reads the external data');
    const model = OnnxModel.load(file);
    const graph = OnnxGraph.build(model);
    const hooked = new HookedModel(model, graph, discover(graph));
    t.after(() => hooked.dispose());
    const got = (await hooked.runWithCache({ x: { type: 'float32', data: x, dims: [n] } }, ['y'])).cache.get('y')!;
    const same = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);
    assert.ok(same(got.data as Float32Array, want), 'an instrumented session reads the same weight');
    assert.ok(same(model.tensorFloat32(model.graph.initializer[0]), external), 'the weight as read');
  });
}
