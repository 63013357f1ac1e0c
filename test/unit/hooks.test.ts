import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { textFeeds } from '../../src/runtime/feeds';
import { expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';
import type { OnnxGraph } from '../../src/runtime/onnx/graph';
import type { HostTensor } from '../../src/runtime/tensor';

/** The inputs the per-layer references were computed on: the prompt, or one row of the first run. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function referenceFeeds(graph: OnnxGraph, exp: any): Record<string, HostTensor> {
  if (exp.layers.inputRow === undefined) return textFeeds(graph, [exp.prompt.ids]);
  const r = exp.layers.inputRow as number;
  const feeds: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries<{ type: string; dims: number[]; data: number[] }>(exp.runs[0].inputs)) {
    const n = t.dims.slice(1).reduce((a, b) => a * b, 1);
    const rowData = t.data.slice(r * n, (r + 1) * n);
    const dims = [1, ...t.dims.slice(1)];
    feeds[name] = t.type === 'int64' ? { type: 'int64', data: BigInt64Array.from(rowData, (v) => BigInt(v)), dims } : { type: 'float32', data: Float32Array.from(rowData), dims };
  }
  return feeds;
}

const KINDS: [string, string][] = [
  ['resid_pre', 'hook_resid_pre'],
  ['resid_post', 'hook_resid_post'],
  ['attn_out', 'hook_attn_out'],
  ['mlp_out', 'hook_mlp_out'],
  ['pattern', 'attn.hook_pattern'],
];

for (const name of ['gpt2', 'llama', 'gpt2-external', 'bert', 'clip-text']) {
  test(`${name}: cached activations equal the PyTorch hooks' within 1e-4`, { skip: !hasFixture(name) && 'fixture not generated' }, async (t) => {
    const exp = expected(name);
    const { model, graph, arch } = openModel(fixture(name));
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const hooks: string[] = [];
    for (const [key, hook] of KINDS) if (exp.layers?.[key]) for (let l = 0; l < arch.layers; l++) hooks.push(`blocks.${l}.${hook}`);
    assert.ok(hooks.length > 0, 'the fixture has per-layer references');
    const { cache } = await hooked.runWithCache(referenceFeeds(graph, exp), hooks);
    for (const [key, hook] of KINDS) {
      if (!exp.layers?.[key]) continue;
      for (let l = 0; l < arch.layers; l++) {
        const got = cache.get(`blocks.${l}.${hook}`)!;
        const want = flat(exp.layers[key][l]);
        assert.ok(maxAbsDiff(got.data as Float32Array, want) < 1e-4, `${key} layer ${l}: max diff ${maxAbsDiff(got.data as Float32Array, want)}`);
      }
    }
  });
}
