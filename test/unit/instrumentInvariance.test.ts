import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { onnxType } from '../../src/runtime/onnx/proto';
import { toNumber } from '../../src/runtime/onnx/types';
import type { TensorProto } from '../../src/runtime/onnx/types';
import type { HostTensor } from '../../src/runtime/tensor';
import { FIXTURES, SHARED_MODELS, expected } from './helpers/fixtures';
import { checkInvariance } from './helpers/invariance';

const TESTDATA = '/usr/share/libonnx-testdata/data';

/** Feeds from a fixture's recorded run. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function recordedFeeds(run: any): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries<{ type: string; dims: number[]; data: number[] }>(run.inputs)) {
    feeds[name] = t.type === 'int64' ? { type: 'int64', data: BigInt64Array.from(t.data, (v) => BigInt(v)), dims: t.dims } : { type: 'float32', data: Float32Array.from(t.data), dims: t.dims };
  }
  return feeds;
}

const fixtureModels = fs.existsSync(FIXTURES)
  ? fs.readdirSync(FIXTURES).flatMap((d) => {
      const e = path.join(FIXTURES, d, 'expected.json');
      if (!fs.existsSync(e)) return [];
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      return (expected(d).runs as any[]).map((run) => ({ name: d, file: path.join(FIXTURES, d, run.model), run }));
    })
  : [];

for (const { name, file, run } of fixtureModels) {
  test(`${name}/${path.basename(file)}: instrumented at every hook point (masks off), outputs are identical`, async () => {
    const { model, graph, arch } = openModel(file);
    const hooks = arch.hookPoints.map((h) => h.tensor);
    assert.ok(arch.family === 'unknown' || hooks.length > 0, 'hook points discovered');
    const verdict = await checkInvariance(model, graph, recordedFeeds(run), hooks.length ? hooks : undefined, hooks.length ? hooks : undefined);
    assert.ok('ok' in verdict && verdict.ok, JSON.stringify(verdict));
    // And at every value of the graph, not only the hook points.
    const all = await checkInvariance(model, graph, recordedFeeds(run));
    assert.ok('ok' in all && all.ok, JSON.stringify(all));
  });
}

/** Synthesised feeds for a third-party model: symbolic dims = `dim`, ids 0, floats 0.1. */
function syntheticFeeds(graph: OnnxGraph, dim: number): Record<string, HostTensor> | undefined {
  const feeds: Record<string, HostTensor> = {};
  for (const i of graph.inputs) {
    const t = graph.types.get(i.name);
    if (!t?.shape) return undefined;
    const dims = t.shape.map((d) => (typeof d === 'number' ? d : dim));
    const n = dims.reduce((a, b) => a * b, 1);
    switch (t.elemType) {
      case 1:
        feeds[i.name] = { type: 'float32', data: new Float32Array(n).fill(0.1), dims };
        break;
      case 7:
        feeds[i.name] = { type: 'int64', data: new BigInt64Array(n).fill(1n), dims };
        break;
      case 6:
        feeds[i.name] = { type: 'int32', data: new Int32Array(n).fill(1), dims };
        break;
      case 10:
        feeds[i.name] = { type: 'float16', data: new Uint16Array(n).fill(0x2e66), dims };
        break;
      default:
        return undefined;
    }
  }
  return feeds;
}

const sharedModels = fs.existsSync(SHARED_MODELS)
  ? fs.readdirSync(SHARED_MODELS).flatMap((d) => (fs.statSync(path.join(SHARED_MODELS, d)).isDirectory() ? fs.readdirSync(path.join(SHARED_MODELS, d)).filter((f) => f.endsWith('.onnx')).map((f) => path.join(SHARED_MODELS, d, f)) : []))
  : [];

test('third-party models that onnxruntime runs are unchanged by full instrumentation', { skip: sharedModels.length === 0 && 'shared models absent' }, async () => {
  const report: string[] = [];
  let checked = 0;
  for (const file of sharedModels) {
    const model = OnnxModel.load(file);
    const graph = OnnxGraph.build(model);
    let verdict;
    for (const dim of [1, 2]) {
      const feeds = syntheticFeeds(graph, dim);
      if (!feeds) break;
      verdict = await checkInvariance(model, graph, feeds);
      if (!('skipped' in verdict)) break;
    }
    report.push(`${path.basename(file)}: ${JSON.stringify(verdict ?? 'no synthesisable feeds')}`);
    if (verdict && 'ok' in verdict) {
      checked++;
      assert.ok(verdict.ok, `${file}: ${JSON.stringify(verdict)}`);
    }
  }
  assert.ok(checked >= 5, `at least five third-party models checked:\n${report.join('\n')}`);
});

function readTensor(file: string): TensorProto {
  return onnxType('TensorProto').decode(fs.readFileSync(file)) as unknown as TensorProto;
}

test("Debian's libonnx-testdata node and model tests are unchanged by full instrumentation", { skip: !fs.existsSync(TESTDATA) && 'libonnx-testdata not installed' }, async () => {
  let ok = 0;
  let skipped = 0;
  const failures: string[] = [];
  for (const group of fs.readdirSync(TESTDATA)) {
    for (const name of fs.readdirSync(path.join(TESTDATA, group))) {
      const dir = path.join(TESTDATA, group, name);
      const file = path.join(dir, 'model.onnx');
      const data = path.join(dir, 'test_data_set_0');
      if (!fs.existsSync(file) || !fs.existsSync(data)) continue;
      let model: OnnxModel;
      try {
        model = OnnxModel.load(file);
      } catch {
        skipped++;
        continue;
      }
      const graph = OnnxGraph.build(model);
      const feeds: Record<string, HostTensor> = {};
      let feedable = true;
      graph.inputs.forEach((inp, i) => {
        const f = path.join(data, `input_${i}.pb`);
        if (!fs.existsSync(f)) return;
        try {
          const t = readTensor(f);
          feeds[inp.name] = model.tensorHost(t);
          if (t.dims.some((d) => toNumber(d) === 0)) feedable = feedable && true;
        } catch {
          feedable = false;
        }
      });
      if (!feedable) {
        skipped++;
        continue;
      }
      const verdict = await checkInvariance(model, graph, feeds);
      if ('skipped' in verdict) skipped++;
      else if (verdict.ok) ok++;
      else failures.push(`${group}/${name}: ${verdict.reason}`);
    }
  }
  assert.deepEqual(failures, [], `${failures.length} graphs changed by instrumentation`);
  assert.ok(ok > 500, `${ok} graphs checked (${skipped} not runnable by onnxruntime as given)`);
});
