import { test } from 'node:test';
import assert from 'node:assert/strict';
import { textFeeds } from '../../src/runtime/feeds';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { asFloat32 } from '../../src/runtime/tensor';
import { expected, fixture, hasFixture, maxAbsDiff } from './helpers/fixtures';

for (const name of ['gpt2', 'llama', 'gpt2-external']) {
  test(`${name}: restartable blocks give the same logits when started mid-stack from the captured residual stream`, { skip: !hasFixture(name) && 'fixture not generated' }, async (t) => {
    const { model, graph, arch } = openModel(fixture(name));
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const ids: number[] = expected(name).prompt?.ids ?? expected(name).runs[0].inputs.input_ids.data.slice(0, 5);
    const resid = arch.blocks.map((b) => `blocks.${b.index}.hook_resid_post`);
    const plain = await hooked.prepare({ capture: resid, lastTokenLogits: true });
    const full = await plain.run(textFeeds(graph, [ids]), { fetch: resid });
    const s = await hooked.prepare({ capture: resid, patch: resid, lastTokenLogits: true, restart: true });
    const start0 = await s.run(textFeeds(graph, [ids]), { fetch: resid });
    assert.equal(maxAbsDiff(asFloat32(start0.lastLogits!), asFloat32(full.lastLogits!)), 0, 'start 0 = the plain graph');
    for (let l = 1; l <= arch.layers; l++) {
      const r = await s.run(textFeeds(graph, [ids]), { start: { block: l, entry: full.cache.get(resid[l - 1])! } });
      assert.ok(maxAbsDiff(asFloat32(r.lastLogits!), asFloat32(full.lastLogits!)) < 1e-5, `start at block ${l}`);
    }
    // A run that fetches captures gets them from the blocks it computes, and the same logits
    // as one that fetches nothing (where the blocks hand on scalar zeros instead).
    const mid = Math.floor(arch.layers / 2);
    const withCaptures = await s.run(textFeeds(graph, [ids]), { start: { block: mid, entry: full.cache.get(resid[mid - 1])! }, fetch: resid.slice(mid) });
    for (const h of resid.slice(mid)) assert.ok(maxAbsDiff(asFloat32(withCaptures.cache.get(h)!), asFloat32(full.cache.get(h)!)) < 1e-5, h);
    const without = await s.run(textFeeds(graph, [ids]), { start: { block: mid, entry: full.cache.get(resid[mid - 1])! } });
    assert.equal(maxAbsDiff(asFloat32(without.lastLogits!), asFloat32(withCaptures.lastLogits!)), 0);

    // Fetching nothing, the blocks hand on scalars for their captures (seen by asking onnxruntime
    // for them behind the run's back), and whole block outputs (the next block reads them).
    const mlp = arch.blocks.map((b) => `blocks.${b.index}.hook_mlp_out`);
    const g = await hooked.prepare({ capture: [...resid, ...mlp], lastTokenLogits: true, restart: true });
    const ortSession = g.open.session as unknown as { run: (feeds: unknown, fetches: string[]) => Promise<Record<string, { dims: readonly number[] }>> };
    const innerRun = ortSession.run.bind(ortSession);
    const outputOf = (h: string): string => (g as unknown as { inst: { captureOutputs: Map<string, string> } }).inst.captureOutputs.get(hooked.tensorOf(h))!;
    const dims: Record<string, readonly number[]> = {};
    ortSession.run = async (feeds, fetches) => {
      const out = await innerRun(feeds, [...fetches, ...[...resid, ...mlp].map(outputOf)]);
      for (const [k, v] of Object.entries(out)) dims[k] = v.dims;
      return out;
    };
    const gatedRun = await g.run(textFeeds(graph, [ids]), { start: { block: mid, entry: full.cache.get(resid[mid - 1])! } });
    assert.ok(maxAbsDiff(asFloat32(gatedRun.lastLogits!), asFloat32(full.lastLogits!)) < 1e-5);
    for (const h of mlp.slice(mid)) assert.deepEqual(dims[outputOf(h)], [], `${h}: a scalar`);
    for (const h of resid.slice(mid)) assert.deepEqual(dims[outputOf(h)], [1, ids.length, arch.dModel], `${h}: whole`);
    await g.run(textFeeds(graph, [ids]), { start: { block: mid, entry: full.cache.get(resid[mid - 1])! }, fetch: [mlp[mid]] });
    for (const h of mlp.slice(mid)) assert.deepEqual(dims[outputOf(h)], [1, ids.length, arch.dModel], `${h}: fetched, whole`);
    ortSession.run = innerRun;
  });
}
