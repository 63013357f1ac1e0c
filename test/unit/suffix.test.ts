import { test } from 'node:test';
import assert from 'node:assert/strict';
import { textFeeds } from '../../src/runtime/feeds';
import { openModel } from '../../src/runtime/inspect';
import { discover } from '../../src/runtime/architecture/discover';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import type { PreparedSession, RunResult } from '../../src/runtime/instrument/hookedModel';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { asFloat32, sliceAxis, tileRows } from '../../src/runtime/tensor';
import type { HostTensor } from '../../src/runtime/tensor';
import type { GraphProto, ModelProto } from '../../src/runtime/onnx/types';
import { expected, fixture, hasFixture, maxAbsDiff } from './helpers/fixtures';
import { float16Stories, hasStories, STORIES } from './helpers/stories';

/**
 * Checks suffix runs of `s` against its full run `full` of `rows`: for each start block and
 * token t0, the entry at positions t0.. and every later block's keys and values give the full
 * run's last logits within `tol` of their scale.
 */
async function assertSuffixRuns(s: PreparedSession, full: RunResult, feeds: Record<string, HostTensor>, inputs: string[], blocks: number[], tokens: number[], tol: number): Promise<void> {
  const want = asFloat32(full.lastLogits!);
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
  const S = full.cache.get(inputs[0])!.dims[1];
  for (const block of blocks) {
    for (const t0 of tokens) {
      const past: Record<string, HostTensor> = {};
      for (const p of s.kvPoints!) if (p.block >= block) past[p.input] = full.kv!.get(p.input)!;
      const r = await s.run(feeds, { start: { block, entry: sliceAxis(full.cache.get(inputs[block])!, 1, t0, S), past } });
      const d = maxAbsDiff(asFloat32(r.lastLogits!), want);
      assert.ok(d < tol * scale, `block ${block}, token ${t0}: logits differ by ${d}`);
    }
  }
}

// A run that starts at block s and token t0, fed the residual stream at positions t0.. and
// every later block's keys and values from a full run (the graph keeps those before t0), gives
// that run's last-position logits: the positions before t0 are not recomputed.
for (const name of ['gpt2', 'llama', 'gpt2-external']) {
  test(`${name}: suffix runs (start at a block and a token, earlier keys and values fed) give the full run's logits`, { skip: !hasFixture(name) && 'fixture not generated' }, async (t) => {
    const { model, graph, arch } = openModel(fixture(name));
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const ids: number[] = expected(name).prompt?.ids ?? expected(name).runs[0].inputs.input_ids.data.slice(0, 5);
    const S = ids.length;
    const inputs = ['blocks.0.hook_resid_pre', ...arch.blocks.map((b) => `blocks.${b.index}.hook_resid_post`)];
    const s = await hooked.prepare({ capture: inputs, lastTokenLogits: true, suffix: true });
    const points = s.kvPoints!;
    assert.equal(points.length, 2 * arch.layers, 'keys and values of every block');
    const full = await s.run(textFeeds(graph, [ids]), { fetch: inputs, fetchKv: true });
    const scale = asFloat32(full.lastLogits!).reduce((m, v) => Math.max(m, Math.abs(v)), 1);
    await assertSuffixRuns(s, full, textFeeds(graph, [ids]), inputs, arch.blocks.map((b) => b.index), [1, Math.floor(S / 2), S - 1], 1e-5);
    // Prefixes fed once for rows that repeat them: the graph tiles them along the batch.
    const t0 = Math.floor(S / 2);
    const past: Record<string, HostTensor> = {};
    for (const p of points) past[p.input] = full.kv!.get(p.input)!;
    const three = await s.run(textFeeds(graph, [ids, ids, ids]), { start: { block: 0, entry: tileRows(sliceAxis(full.cache.get(inputs[0])!, 1, t0, S), 3), past } });
    const V = full.lastLogits!.dims[2];
    for (let r = 0; r < 3; r++) assert.ok(maxAbsDiff(asFloat32(three.lastLogits!).subarray(r * V, (r + 1) * V), asFloat32(full.lastLogits!)) < 1e-5 * scale, `row ${r} of 3 with a 1-row prefix`);
    const plain = await s.run(textFeeds(graph, [ids]), {});
    assert.equal(maxAbsDiff(asFloat32(plain.lastLogits!), asFloat32(full.lastLogits!)), 0, 'suffix off = the full run');
    // The suffix runs above computed the last block's MLP at the last position only (lastMlp.ts).
    assert.ok(hasNode((s as unknown as { inst: { proto: ModelProto } }).inst.proto.graph!, 'mechanist/last_mlp/If'), 'the last block\'s MLP input is cut');
  });
}

/** Whether a node of this name is in `g` or any of its subgraphs. */
function hasNode(g: GraphProto, name: string): boolean {
  return g.node.some((n) => n.name === name || n.attribute.some((a) => a.g && hasNode(a.g, name)));
}

// With the last block's MLP cut to the last position, a patch of that MLP's output still applies
// there (its mask broadcasts against the one position), and patches at other tokens change nothing.
test('gpt2: with the last MLP cut to the last position, patching its output at the last token matches a full-length run', { skip: !hasFixture('gpt2') && 'fixture not generated' }, async (t) => {
  const { model, graph, arch } = openModel(fixture('gpt2'));
  const hooked = new HookedModel(model, graph, arch);
  t.after(() => hooked.dispose());
  const ids: number[] = expected('gpt2').prompt.ids;
  const S = ids.length;
  const L = arch.layers;
  const inputs = ['blocks.0.hook_resid_pre', ...arch.blocks.map((b) => `blocks.${b.index}.hook_resid_post`)];
  const mlp = `blocks.${L - 1}.hook_mlp_out`;
  const s = await hooked.prepare({ capture: inputs, patch: [mlp], lastTokenLogits: true, suffix: true });
  const full = await s.run(textFeeds(graph, [ids]), { fetch: inputs, fetchKv: true });
  const D = arch.dModel;
  // The patched values at every position (a patch reads its positions' rows of it).
  const value: HostTensor = { type: 'float32', data: Float32Array.from({ length: S * D }, (_, i) => Math.sin(i)), dims: [1, S, D] };
  for (const token of [S - 1, S - 2]) {
    // Reference: a full-length run (suffix off) with the patch.
    const ref = await s.run(textFeeds(graph, [ids]), { patches: [{ hook: mlp, rows: [0], positions: [token], value }] });
    const t0 = Math.floor(S / 2);
    const past: Record<string, HostTensor> = {};
    for (const p of s.kvPoints!) if (p.block >= L - 1) past[p.input] = full.kv!.get(p.input)!;
    const cut = await s.run(textFeeds(graph, [ids]), { start: { block: L - 1, entry: sliceAxis(full.cache.get(inputs[L - 1])!, 1, t0, S), past }, patches: [{ hook: mlp, rows: [0], positions: [token - t0], value: sliceAxis(value, 1, t0, S) }] });
    const scale = asFloat32(ref.lastLogits!).reduce((m, v) => Math.max(m, Math.abs(v)), 1);
    assert.ok(maxAbsDiff(asFloat32(cut.lastLogits!), asFloat32(ref.lastLogits!)) < 1e-5 * scale, `patch at token ${token}`);
    if (token === S - 2) assert.ok(maxAbsDiff(asFloat32(cut.lastLogits!), asFloat32(full.lastLogits!)) < 1e-5 * scale, 'a patch before the last token changes nothing');
    else assert.ok(maxAbsDiff(asFloat32(cut.lastLogits!), asFloat32(full.lastLogits!)) > 1e-3, 'a patch at the last token changes the logits');
  }
});

// stories260K (llama2.c weights, graph assembled by hand): rotary tables [positions, 1, dim/2, 1]
// sliced from constants on axis 0, grouped KV heads repeated through Reshape/Expand/Reshape.
test('stories260K: suffix runs cut rotary tables along their position axis and give the full run\'s logits', { skip: !hasStories() && 'shared models absent' }, async (t) => {
  const { model, graph, arch } = openModel(STORIES);
  const hooked = new HookedModel(model, graph, arch);
  t.after(() => hooked.dispose());
  const ids = [1, 403, 407, 261, 378, 429, 362];
  const S = ids.length;
  const inputs = ['blocks.0.hook_resid_pre', ...arch.blocks.map((b) => `blocks.${b.index}.hook_resid_post`)];
  const s = await hooked.prepare({ capture: inputs, lastTokenLogits: true, suffix: true });
  const full = await s.run(textFeeds(graph, [ids, ids]), { fetch: inputs, fetchKv: true });
  await assertSuffixRuns(s, full, textFeeds(graph, [ids, ids]), inputs, arch.blocks.map((b) => b.index), [1, 3, S - 1], 1e-5);
});

// The same model in float16 with its attention scores computed in float32 (queries and keys cast
// up before their MatMul, as fp16 exports that upcast attention do): the keys the suffix rewrite
// joins are then float32 in a float16 graph.
test('stories260K in float16 with float32 attention scores: suffix runs give the full run\'s logits', { skip: !hasStories() && 'shared models absent' }, async (t) => {
  const model = float16Stories(true);
  const graph = OnnxGraph.build(model);
  const arch = discover(graph);
  const hooked = new HookedModel(model, graph, arch);
  t.after(() => hooked.dispose());
  const ids = [1, 403, 407, 261, 378, 429, 362];
  const inputs = ['blocks.0.hook_resid_pre', ...arch.blocks.map((b) => `blocks.${b.index}.hook_resid_post`)];
  const s = await hooked.prepare({ capture: inputs, lastTokenLogits: true, suffix: true });
  const full = await s.run(textFeeds(graph, [ids]), { fetch: inputs, fetchKv: true });
  assert.equal(full.lastLogits!.type, 'float16');
  // (float16 logits: within a few of their ulps at this scale)
  await assertSuffixRuns(s, full, textFeeds(graph, [ids]), inputs, [0, 2], [1, 4], 4e-3);
  const plain = await s.run(textFeeds(graph, [ids]), {});
  assert.equal(maxAbsDiff(asFloat32(plain.lastLogits!), asFloat32(full.lastLogits!)), 0, 'suffix off = the full run');
});
