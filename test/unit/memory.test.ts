import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { asOutOfMemory, availableMemory, checkSessionMemory, OutOfMemoryError, sessionWeightBytes } from '../../src/runtime/memory';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { onnxType } from '../../src/runtime/onnx/proto';
import { DataType } from '../../src/runtime/onnx/types';
import { fixture, hasFixture } from './helpers/fixtures';
import { float16Stories, hasStories } from './helpers/stories';

const CHILD = path.resolve(__dirname, 'helpers/memoryChild.js');

test('the weights a CPU session holds: every initializer, float16 ones as float32', { skip: !(hasFixture('gpt2') && hasStories()) && 'fixtures' }, () => {
  const { model } = openModel(fixture('gpt2'));
  const bytes = model.graph.initializer.reduce((n, t) => n + model.tensorBytes(t).length, 0);
  assert.equal(sessionWeightBytes(model, 'cpu'), bytes);
  const half = float16Stories();
  const f16 = half.graph.initializer.filter((t) => t.data_type === DataType.FLOAT16).reduce((n, t) => n + half.tensorBytes(t).length, 0);
  const rest = half.graph.initializer.filter((t) => t.data_type !== DataType.FLOAT16).reduce((n, t) => n + half.tensorBytes(t).length, 0);
  assert.ok(f16 > 0);
  assert.equal(sessionWeightBytes(half, 'cpu'), 2 * f16 + rest);
  assert.equal(sessionWeightBytes(half, 'cuda'), f16 + rest);
});

test('a model whose weights cannot fit is refused before onnxruntime tries, with both numbers', { skip: !hasStories() && 'stories260K' }, () => {
  const half = float16Stories();
  const need = sessionWeightBytes(half, 'cpu');
  assert.throws(
    () => checkSessionMemory(half, 'cpu', { bytes: need - 1, source: 'test' }),
    (e: Error) => e instanceof OutOfMemoryError && /needs at least 0\.\d\d GiB for this model's weights on the CPU \(float16 weights are held as float32 there\), and 0\.\d\d GiB is left \(test\)/.test(e.message),
  );
  checkSessionMemory(half, 'cpu', { bytes: need, source: 'test' });
  checkSessionMemory(half, 'cuda', { bytes: 0, source: 'test' });
  if (process.platform === 'linux') {
    const m = availableMemory();
    assert.ok(m && m.bytes > 0 && m.source.length > 0, JSON.stringify(m));
  }
  // No figure to trust (outside Linux): nothing is refused.
  checkSessionMemory(half, 'cpu', null);
});

test('allocation failures become OutOfMemoryError naming what was being done; other errors pass through', () => {
  for (const msg of ['Exception during initialization: std::bad_alloc', 'Failed to allocate memory for requested buffer of size 4294967296', 'Array buffer allocation failed']) {
    const e = asOutOfMemory(new Error(msg), 'running 60 rows through onnxruntime');
    assert.ok(e instanceof OutOfMemoryError, msg);
    assert.match(e.message, /^out of memory while running 60 rows through onnxruntime \(/);
    assert.match(e.message, /GiB is left/);
  }
  const other = new Error('Invalid rank for input: x Got: 3 Expected: 2');
  assert.equal(asOutOfMemory(other, 'x'), other);
  // The project's own errors may quote the user's text: never read as allocation failures.
  class InputError extends Error {}
  const quoting = new InputError('the replacement subject "out of memory" has 3 tokens, the subject 2');
  assert.equal(asOutOfMemory(quoting, 'x'), quoting);
  // On the GPU, host memory figures would mislead.
  const gpu = asOutOfMemory(new Error('CUDA failure 2: out of memory'), 'running 60 rows through onnxruntime', 'cuda') as Error;
  assert.match(gpu.message, /^out of GPU memory while running 60 rows through onnxruntime \(CUDA failure 2: out of memory\); use a smaller model/);
  assert.doesNotMatch(gpu.message, /GiB is left/);
});

/** model.onnx: y = x @ W, W [n, n] float32 in w.bin, a sparse file of zeros (no disk used). */
function sparseMatMul(n: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-memory-'));
  fs.writeFileSync(path.join(dir, 'w.bin'), '');
  fs.truncateSync(path.join(dir, 'w.bin'), n * n * 4);
  const type = (dims: (number | string)[]) => ({ tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } });
  const T = onnxType('ModelProto');
  const model = T.fromObject({
    ir_version: 8,
    opset_import: [{ domain: '', version: 17 }],
    graph: {
      name: 'big',
      node: [{ name: '/proj/MatMul', op_type: 'MatMul', input: ['x', 'W'], output: ['y'] }],
      initializer: [{ name: 'W', dims: [n, n], data_type: 1, data_location: 1, external_data: [{ key: 'location', value: 'w.bin' }, { key: 'offset', value: '0' }, { key: 'length', value: String(n * n * 4) }] }],
      input: [{ name: 'x', type: type([1, n]) }],
      output: [{ name: 'y', type: type([1, n]) }],
    },
  });
  fs.writeFileSync(path.join(dir, 'model.onnx'), T.encode(model).finish());
  return path.join(dir, 'model.onnx');
}

test('onnxruntime running out of memory while loading a model gives a clear OutOfMemoryError', { skip: process.platform !== 'linux' && 'ulimit -v' }, (t) => {
  // A 1 GiB weight under a 3 GB address-space limit: node with onnxruntime needs about 1.2 GB,
  // and the session maps the weight and packs a copy of it, so the load itself fails.
  const file = sparseMatMul(16384);
  t.after(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
  assert.equal(sessionWeightBytes(OnnxModel.load(file), 'cpu'), 2 ** 30);
  const r = spawnSync('bash', ['-c', `ulimit -v 3000000 && exec "${process.execPath}" "${CHILD}" "${file}"`], { encoding: 'utf8', env: { ...process.env, MECHANIST_HUGE_PAGES: '0' } });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.name, 'OutOfMemoryError', JSON.stringify(out));
  assert.match(out.message, /^out of memory while loading the model into onnxruntime \(.*bad_alloc.*\); .* GiB is left .*, and this process may map at most 2\.9 GiB \(ulimit -v\)/);
  assert.equal(r.stderr, '', "onnxruntime's own error log stays quiet: the error is reported once");
});
