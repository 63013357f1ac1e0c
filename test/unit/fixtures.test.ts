// Checks the committed fixtures (tools/make_fixtures.py): every model runs in onnxruntime-node
// and reproduces the PyTorch outputs recorded in expected.json, and the trained fixtures
// reached the accuracies they claim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';

const FIXTURES = path.join(__dirname, '../../../test/fixtures');
const TOLERANCE = 1e-4;
const ALL = ['bert', 'clip-text', 'clip-vision', 'encdec', 'gpt2', 'gpt2-external', 'llama', 'vit'];

interface TensorJson {
  type: 'int64' | 'int32' | 'float32' | 'bool';
  dims: number[];
  data: number[];
}
interface RunJson {
  model: string;
  inputs: Record<string, TensorJson>;
  outputs: Record<string, TensorJson>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function readExpected(name: string): any {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'expected.json'), 'utf8'));
}

function toTensor(t: TensorJson): ort.Tensor {
  switch (t.type) {
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(t.data, (v) => BigInt(v)), t.dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from(t.data), t.dims);
    case 'bool':
      return new ort.Tensor('bool', Uint8Array.from(t.data, (v) => (v ? 1 : 0)), t.dims);
    default:
      return new ort.Tensor('float32', Float32Array.from(t.data), t.dims);
  }
}

function maxAbsDiff(got: ArrayLike<number>, want: number[]): number {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(Number(got[i]) - want[i]);
    if (!(d <= worst)) worst = d; // NaN propagates as a failure
  }
  return worst;
}

test('every fixture is present', () => {
  for (const name of ALL) {
    assert.ok(fs.existsSync(path.join(FIXTURES, name, 'expected.json')), `${name}/expected.json`);
  }
});

for (const name of ALL) {
  test(`fixture ${name}: onnxruntime-node reproduces the PyTorch outputs within ${TOLERANCE}`, async () => {
    const expected = readExpected(name);
    const runs: RunJson[] = expected.runs;
    assert.ok(runs.length > 0);
    for (const run of runs) {
      const session = await ort.InferenceSession.create(path.join(FIXTURES, name, run.model));
      try {
        const feeds: Record<string, ort.Tensor> = {};
        for (const [k, v] of Object.entries(run.inputs)) feeds[k] = toTensor(v);
        assert.deepEqual([...session.inputNames].sort(), Object.keys(run.inputs).sort(), `${run.model} inputs`);
        const out = await session.run(feeds);
        for (const [k, want] of Object.entries(run.outputs)) {
          const got = out[k];
          assert.ok(got, `${run.model}: output ${k}`);
          assert.deepEqual(got.dims.map(Number), want.dims, `${run.model}: ${k} dims`);
          const diff = maxAbsDiff(got.data as Float32Array, want.data);
          assert.ok(diff <= TOLERANCE, `${name}/${run.model}: ${k} differs by ${diff}`);
        }
      } finally {
        await session.release();
      }
    }
  });
}

test('trained fact models know every fact', () => {
  for (const name of ['gpt2', 'llama']) {
    const e = readExpected(name);
    assert.equal(e.training.factAccuracy, 1, `${name} fact accuracy`);
    assert.equal(e.facts.length, e.training.examples);
    assert.ok(e.causalTrace[0].highScore > 0.5, `${name} clean p(answer)`);
  }
});

test('CLIP zero-shot colour and shape accuracy is far above chance', () => {
  const acc = readExpected('clip-vision').zeroShot.accuracy;
  assert.ok(acc.colour >= 0.9, `colour ${acc.colour} (chance 0.25)`);
  assert.ok(acc.shape >= 0.9, `shape ${acc.shape} (chance 0.33)`);
});

test('ViT and the encoder-decoder solve their tasks', () => {
  assert.ok(readExpected('vit').training.accuracy >= 0.9);
  const e = readExpected('encdec');
  assert.equal(e.training.accuracy, 1);
  assert.deepEqual(e.localization.carrierLayers, [2, 3]);
});
