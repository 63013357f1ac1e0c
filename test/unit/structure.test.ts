/**
 * Hook points found by structure (anonymous exports) and on fused graphs, checked by running
 * the models: the residual stream adds up, attention patterns are distributions over keys, and
 * patching a block's residual output with another prompt's makes the model compute that prompt's
 * outputs (so the hook is the whole stream, not a side branch).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { textFeeds } from '../../src/runtime/feeds';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { asFloat32 } from '../../src/runtime/tensor';
import { ModuleIndex } from '../../src/runtime/architecture/modules';
import { discoverByStructure } from '../../src/runtime/architecture/structure';
import { SHARED_MODELS, fixture, hasFixture } from './helpers/fixtures';
import { checkInvariance } from './helpers/invariance';

/** Models that run on token ids, with the prompt length their inputs allow. */
const RUNNABLE: Record<string, { seq: number }> = {
  'ort-transformers/gpt2_past.onnx': { seq: 1 },
  'ort-transformers/gpt2_one_layer.onnx': { seq: 4 },
  'ort-transformers/bert_toy_optimized.onnx': { seq: 5 },
  'genai-tiny-random-gpt2-fp32/past.onnx': { seq: 4 },
  'genai-tiny-random-llama-fp16/model.onnx': { seq: 4 },
};

function ids(seq: number, seed: number, vocab: number): number[] {
  return Array.from({ length: seq }, (_, i) => (seed * 7 + i * 5 + 1) % vocab);
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

for (const [rel, { seq }] of Object.entries(RUNNABLE)) {
  const file = path.join(SHARED_MODELS, rel);
  test(`${rel}: residual hooks add up, patterns are distributions, and patching resid_post carries a prompt through`, { skip: !fs.existsSync(file) && 'shared models absent' }, async (t) => {
    const { model, graph, arch } = openModel(file);
    assert.notEqual(arch.family, 'unknown', arch.notices.join(' '));
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const names = new Set(arch.hookPoints.map((h) => h.name));
    const vocab = arch.vocabSize ?? 16;
    const feedsA = textFeeds(graph, [ids(seq, 1, vocab)]);
    const feedsB = textFeeds(graph, [ids(seq, 2, vocab)]);
    const out = graph.outputs[0].name;
    // Fused norms that emit the residual sum with its normalised copy offer no residual hooks
    // (a patch would not reach the copy); the sums are captured by ONNX name here instead.
    const fusedNorm = arch.notices.some((n) => /Residual-stream hook points are not offered where a fused norm/.test(n));
    const residTensor = (l: number, which: 'pre' | 'post'): string => {
      const hp = arch.hookPoints.find((h) => h.name === `blocks.${l}.hook_resid_${which}`);
      if (hp) return hp.name;
      assert.ok(fusedNorm, `blocks.${l}.hook_resid_${which} offered`);
      // The sum is the Skip norm's output 3 (resid_post), or the previous block's (resid_pre).
      const skipNorms = graph.nodes.filter((n) => /^Skip(Simplified)?LayerNormalization$/.test(n.op_type));
      const sumOf = (k: number): string => skipNorms[k].output[3];
      return which === 'post' ? sumOf(2 * l + 1) : l > 0 ? sumOf(2 * l - 1) : graph.nodes.find((n) => n.op_type === 'EmbedLayerNormalization')?.output[2] ?? `blocks.0.hook_resid_pre`;
    };
    const hooks = arch.blocks.flatMap((b) => [residTensor(b.index, 'pre'), `blocks.${b.index}.hook_attn_out`, `blocks.${b.index}.hook_mlp_out`, residTensor(b.index, 'post')]);
    for (const h of hooks) assert.ok(names.has(h) || graph.producer.has(h), `${h} offered or a tensor`);
    const patterns = arch.blocks.map((b) => `blocks.${b.index}.attn.hook_pattern`).filter((h) => names.has(h));
    const a = await hooked.runWithCache(feedsA, [...hooks, ...patterns], [out]);

    // Pre-norm: resid_post = resid_pre + attn_out + mlp_out, up to a per-feature constant when
    // the graph adds the projections' biases inside SkipLayerNormalization (then excluded from the hooks).
    const postNorm = arch.family === 'bert';
    const biasExcluded = arch.notices.some((n) => /exclude the output projection's bias/.test(n));
    if (!postNorm) {
      for (const b of arch.blocks) {
        const [pre, attn, mlp, post] = hooks.slice(4 * b.index, 4 * b.index + 4).map((h) => asFloat32(a.cache.get(h)!));
        assert.equal(pre.length, post.length);
        const d = arch.dModel;
        const scale = maxAbs(post) + 1e-6;
        const tol = (a.cache.get(hooks[4 * b.index + 3])!.type === 'float16' ? 2e-2 : 1e-4) * scale;
        const resid = post.map((x, i) => x - pre[i] - attn[i] - mlp[i]);
        for (let i = 0; i < resid.length; i++) {
          const want = biasExcluded ? resid[i % d] : 0;
          assert.ok(Math.abs(resid[i] - want) <= tol, `block ${b.index}: resid_post - (resid_pre + attn_out + mlp_out) at ${i} is ${resid[i]} (expected ${want})`);
        }
        if (biasExcluded && b.attention?.fused) assert.ok(maxAbs(resid) > 0, 'the excluded bias is not zero in this model');
      }
    }
    for (const p of patterns) {
      const pat = a.cache.get(p)!;
      assert.equal(pat.dims.length, 4, `${p} dims ${pat.dims}`);
      const S = pat.dims[3];
      const v = asFloat32(pat);
      for (let r = 0; r < v.length / S; r++) {
        const sum = v.subarray(r * S, (r + 1) * S).reduce((x, y) => x + y, 0);
        assert.ok(Math.abs(sum - 1) < 1e-3, `${p} row ${r} sums to ${sum}`);
      }
      assert.equal(pat.dims[1], arch.heads, `${p}: ${arch.heads} heads`);
    }

    // Patch block l's residual output in prompt B with prompt A's: the rest of the model then
    // computes A's outputs exactly. Where residual hooks are not offered (fused norms), patch the
    // embedding and every branch output instead: together they make up the whole stream.
    // (A resid_post that is itself the graph's output is not patched there: the output stays the original value.)
    const positions = Array.from({ length: seq }, (_, i) => i);
    const wantOut = asFloat32(a.outputs[out]);
    const residPatch = arch.blocks
      .filter((x, i, all) => i === 0 || i === all.length - 1)
      .map((b) => `blocks.${b.index}.hook_resid_post`)
      .filter((h) => names.has(h) && !graph.outputs.some((o) => o.name === arch.hookPoints.find((p) => p.name === h)!.tensor))
      .map((h) => [h]);
    const branchPatch = names.has('hook_embed') ? [['hook_embed', ...arch.blocks.flatMap((b) => [`blocks.${b.index}.hook_attn_out`, `blocks.${b.index}.hook_mlp_out`])]] : [];
    const sets = residPatch.length ? residPatch : branchPatch;
    if (rel !== 'genai-tiny-random-gpt2-fp32/past.onnx') assert.ok(sets.length > 0, 'a patch test applies'); // (its embeddings are fused into EmbedLayerNormalization)
    for (const set of sets) {
      const source = await hooked.runWithCache(feedsA, set);
      const clean = await hooked.runWithPatches(feedsB, [], [], [out]);
      const patched = await hooked.runWithPatches(
        feedsB,
        set.map((hook) => ({ hook, rows: [0], positions, value: source.cache.get(hook)! })),
        [],
        [out],
      );
      const got = asFloat32(patched.outputs[out]);
      const base = asFloat32(clean.outputs[out]);
      const scale = maxAbs(wantOut) + 1e-6;
      let diff = 0;
      let moved = 0;
      for (let i = 0; i < got.length; i++) {
        diff = Math.max(diff, Math.abs(got[i] - wantOut[i]));
        moved = Math.max(moved, Math.abs(base[i] - wantOut[i]));
      }
      assert.ok(moved > 1e-3 * scale, `prompts A and B give different outputs (${moved})`);
      assert.ok(diff <= 1e-3 * scale, `${set.join(' + ')} patched with A's values: outputs differ from A's by ${diff} (scale ${scale})`);
    }
  });
}

// Blocks found by structure hold every node their computation needs (norms between residual
// additions, shape plumbing), so they can be made restartable: a run started at block l from
// the captured residual stream gives the full run's outputs.
const BERT_TOY = path.join(SHARED_MODELS, 'ort-transformers/bert_toy_optimized.onnx');
test('bert_toy_optimized (anonymous, post-norm): blocks found by structure restart mid-stack with the same outputs', { skip: !fs.existsSync(BERT_TOY) && 'shared models absent' }, async (t) => {
  const { model, graph, arch } = openModel(BERT_TOY);
  const hooked = new HookedModel(model, graph, arch);
  t.after(() => hooked.dispose());
  const out = graph.outputs[0].name;
  const feeds = textFeeds(graph, [[3, 8, 13, 21]]);
  const resid = arch.blocks.map((b) => `blocks.${b.index}.hook_resid_post`);
  const full = await hooked.runWithCache(feeds, resid, [out]);
  const s = await hooked.prepare({ capture: resid, patch: resid, restart: true });
  const want = asFloat32(full.outputs[out]);
  for (let l = 1; l <= arch.layers; l++) {
    const r = await s.run(feeds, { start: { block: l, entry: full.cache.get(resid[l - 1])! }, outputs: [out] });
    const got = asFloat32(r.outputs[out]);
    let diff = 0;
    for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
    assert.ok(diff < 1e-5, `start at block ${l}: outputs differ by ${diff}`);
  }
});

// The structural discovery, run on the scoped fixtures, must find what their scopes say: the
// same blocks, heads and hook tensors. Two spellings may differ: hook_z (the per-head
// [b, s, H, Dh] value before the merge Reshape, where scopes give the merged [b, s, H*Dh]: the
// same numbers in the same order) and a block-0 input that is a Cast of the embedding.
for (const name of ['gpt2', 'gpt2-external', 'llama', 'bert', 'clip-text']) {
  test(`${name}: discovery by structure agrees with discovery by scopes`, { skip: !hasFixture(name) && 'fixture not generated' }, () => {
    const { graph, arch } = openModel(fixture(name));
    const found = discoverByStructure(new ModuleIndex(graph));
    for (const k of ['layers', 'heads', 'kvHeads', 'headDim', 'dModel'] as const) assert.equal(found[k], arch[k], k);
    const byName = new Map(found.hookPoints.map((h) => [h.name, h.tensor]));
    const viaOnly = (from: string, to: string, ops: string[]): boolean => {
      let v = to;
      for (let i = 0; i < 8 && v !== from; i++) {
        const p = graph.producer.get(v);
        if (!p || !ops.includes(p.op_type)) return false;
        v = p.input[0];
      }
      return v === from;
    };
    for (const h of arch.hookPoints) {
      const t = byName.get(h.name);
      assert.ok(t, `${h.name} found by structure`);
      if (t === h.tensor) continue;
      if (h.name.endsWith('attn.hook_z')) assert.ok(viaOnly(t, h.tensor, ['Reshape']), `${h.name}: ${h.tensor} is a reshape of ${t}`);
      else if (h.name === 'blocks.0.hook_resid_pre') assert.ok(viaOnly(h.tensor, t, ['Cast']), `${h.name}: ${t} is a cast of ${h.tensor}`);
      else assert.fail(`${h.name}: structure says ${t}, scopes say ${h.tensor}`);
    }
  });
}

for (const [rel, { seq }] of Object.entries(RUNNABLE)) {
  const file = path.join(SHARED_MODELS, rel);
  test(`${rel}: instrumented at every hook point discovery offers (masks off), outputs are unchanged`, { skip: !fs.existsSync(file) && 'shared models absent' }, async () => {
    const { model, graph, arch } = openModel(file);
    const hooks = arch.hookPoints.map((h) => h.tensor);
    assert.ok(hooks.length > 0, 'hook points discovered');
    // (At most 2 tokens: enough to exercise attention, and quick on the 32000-word vocabulary.)
    // Patched sums of fused Skip norms are unfused (an Add and a LayerNormalization), which
    // rounds unlike the fused kernel: compared within 1e-5 of scale there, bit for bit elsewhere.
    const unfused = graph.nodes.some((n) => /^Skip.*Normalization$/.test(n.op_type) && n.output[3] && hooks.includes(n.output[3]));
    const verdict = await checkInvariance(model, graph, textFeeds(graph, [ids(Math.min(seq, 2), 3, arch.vocabSize ?? 16)]), hooks, hooks, unfused ? 1e-5 : 0);
    assert.ok('ok' in verdict && verdict.ok, JSON.stringify(verdict));
  });
}
