/**
 * Unfusing Skip*LayerNormalization (architecture/unfuse.ts) on onnxruntime-genai's GPT-2 (fp32,
 * SkipLayerNormalization with bias) and LLaMA (fp16, SkipSimplifiedLayerNormalization): the
 * unfused graph computes the same outputs, and discovery on it offers residual hook points
 * (withheld on the fused graph) whose patches carry one prompt's stream into another's run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModuleIndex } from '../../src/runtime/architecture/modules';
import { discoverByStructure } from '../../src/runtime/architecture/structure';
import { unfuseAllSkipNorms } from '../../src/runtime/architecture/unfuse';
import { textFeeds } from '../../src/runtime/feeds';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { fromOrt, toOrt } from '../../src/runtime/session';
import { asFloat32 } from '../../src/runtime/tensor';
import { SHARED_MODELS } from './helpers/fixtures';

const MODELS: Record<string, { tol: number }> = {
  'genai-tiny-random-gpt2-fp32/past.onnx': { tol: 1e-5 },
  'genai-tiny-random-llama-fp16/model.onnx': { tol: 2e-2 },
};

/** Writes the model with every Skip norm unfused into a temp folder (external data copied alongside). */
function unfusedCopy(file: string): string {
  const { model, graph } = openModel(file);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-unfused-'));
  for (const f of model.externalFiles()) fs.copyFileSync(f, path.join(dir, path.basename(f)));
  const original = model.graph.node;
  model.graph.node = unfuseAllSkipNorms(graph, original);
  try {
    fs.writeFileSync(path.join(dir, path.basename(file)), model.encode());
  } finally {
    model.graph.node = original;
  }
  return path.join(dir, path.basename(file));
}

async function logits(file: string, ids: number[][]): Promise<Float32Array> {
  const { graph } = openModel(file);
  const s = await ort.InferenceSession.create(file, { logSeverityLevel: 3, graphOptimizationLevel: 'disabled' });
  try {
    const feeds = Object.fromEntries(Object.entries(textFeeds(graph, ids)).map(([k, v]) => [k, toOrt(v)]));
    const out = await s.run(feeds);
    return asFloat32(fromOrt(out[graph.outputs[0].name]));
  } finally {
    await s.release();
  }
}

for (const [rel, { tol }] of Object.entries(MODELS)) {
  const file = path.join(SHARED_MODELS, rel);
  test(`${rel}: unfused Skip norms give the same outputs, and residual hooks that patch correctly`, { skip: !fs.existsSync(file) && 'shared models absent' }, async (t) => {
    const copy = unfusedCopy(file);
    t.after(() => fs.rmSync(path.dirname(copy), { recursive: true, force: true }));
    const ids = [[3, 7, 11, 2]];
    const [a, b] = [await logits(file, ids), await logits(copy, ids)];
    const scale = a.reduce((m, x) => Math.max(m, Math.abs(x)), 1e-6);
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
    assert.ok(diff <= tol * scale, `unfused outputs differ by ${diff} (scale ${scale})`);

    // The residual stream as structure reads it from the unfused graph (what an instrumenter
    // that unfuses the norms it patches would offer: the sums keep their names).
    const { model, graph } = openModel(copy);
    assert.ok(!graph.nodes.some((n) => /^Skip/.test(n.op_type)), 'no fused norm left');
    const arch = discoverByStructure(new ModuleIndex(graph));
    assert.ok(!arch.notices.some((n) => /fused norm \(Skip/.test(n)), arch.notices.join(' '));
    const fused = discoverByStructure(new ModuleIndex(openModel(file).graph));
    assert.equal(arch.layers, fused.layers, 'the same blocks as the fused graph');
    const fusedGraph = openModel(file).graph;
    const post0 = arch.hookPoints.find((h) => h.name === 'blocks.0.hook_resid_post')!.tensor;
    const producer = fusedGraph.producer.get(post0);
    assert.ok(producer && /^Skip/.test(producer.op_type) && producer.output[3] === post0, `blocks.0.hook_resid_post (${post0}) is the fused norm's sum output`);
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const hook = 'blocks.0.hook_resid_post';
    assert.ok(arch.hookPoints.some((h) => h.name === hook), `${hook} offered on the unfused graph`);
    const out = graph.outputs[0].name;
    const A = textFeeds(graph, [[3, 7, 11, 2]]);
    const B = textFeeds(graph, [[5, 1, 9, 4]]);
    const ra = await hooked.runWithCache(A, [hook], [out]);
    const rb = await hooked.runWithPatches(B, [{ hook, rows: [0], positions: [0, 1, 2, 3], value: ra.cache.get(hook)! }], [], [out]);
    const want = asFloat32(ra.outputs[out]);
    const got = asFloat32(rb.outputs[out]);
    let pd = 0;
    for (let i = 0; i < got.length; i++) pd = Math.max(pd, Math.abs(got[i] - want[i]));
    assert.ok(pd <= 1e-3 * scale, `patching ${hook} with prompt A's values gives A's outputs (diff ${pd})`);
  });
}

// The same on the fused graph as it comes: the instrumenter unfuses the norms whose sums it
// patches, so the residual sums are offered as hook points and their patches carry through.
for (const rel of ['genai-tiny-random-gpt2-fp32/past.onnx', 'genai-tiny-random-llama-fp16/model.onnx']) {
  const file = path.join(SHARED_MODELS, rel);
  test(`${rel}: residual sums of fused norms are hook points, and patching one carries a prompt through`, { skip: !fs.existsSync(file) && 'shared models absent' }, async (t) => {
    const { model, graph, arch } = openModel(file);
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const hook = 'blocks.0.hook_resid_post';
    assert.ok(arch.hookPoints.some((h) => h.name === hook), `${hook} offered: ${arch.notices.join(' ')}`);
    const producer = graph.producer.get(hooked.tensorOf(hook))!;
    assert.ok(/^Skip/.test(producer.op_type), `${hook} is a fused norm's sum (${producer.op_type})`);
    const out = graph.outputs[0].name;
    const A = textFeeds(graph, [[3, 7, 11, 2]]);
    const B = textFeeds(graph, [[5, 1, 9, 4]]);
    const ra = await hooked.runWithCache(A, [hook], [out]);
    const plainB = await hooked.runWithCache(B, [], [out]);
    const rb = await hooked.runWithPatches(B, [{ hook, rows: [0], positions: [0, 1, 2, 3], value: ra.cache.get(hook)! }], [], [out]);
    const want = asFloat32(ra.outputs[out]);
    const got = asFloat32(rb.outputs[out]);
    const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 1e-6);
    let pd = 0;
    let moved = 0;
    const b0 = asFloat32(plainB.outputs[out]);
    for (let i = 0; i < got.length; i++) {
      pd = Math.max(pd, Math.abs(got[i] - want[i]));
      moved = Math.max(moved, Math.abs(b0[i] - want[i]));
    }
    assert.ok(moved > 1e-3 * scale, 'the two prompts give different outputs');
    assert.ok(pd <= 1e-2 * scale, `patching ${hook} with prompt A's values gives A's outputs (diff ${pd}, scale ${scale})`);
  });
}
