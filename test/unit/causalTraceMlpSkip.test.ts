import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discover } from '../../src/runtime/architecture/discover';
import { textFeeds } from '../../src/runtime/feeds';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { causalTrace, windowLayers } from '../../src/runtime/methods/causalTrace';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { asFloat32, softmax } from '../../src/runtime/tensor';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, hasFixture } from './helpers/fixtures';

// MLP restorations may start after their window's first layer a, adding (clean - corrupted) MLP
// output at the token to the corrupted residual stream: true only where the block adds its MLP
// output to the stream as it is. A block that transforms it first (a post-MLP norm, a scale) must
// still get the scores of a plain patched run.
test('gpt2 with a transformed MLP output (resid + tanh(mlp)): MLP traces equal plain patched runs', { skip: !hasFixture('gpt2') && 'fixture not generated' }, async (t) => {
  const exp = expected('gpt2');
  const file = fixture('gpt2');
  const plain = openModel(file);
  const model = OnnxModel.load(file);
  const g = model.graph;
  for (let l = 0; l < plain.arch.layers; l++) {
    const mlp = plain.arch.hookPoints.find((h) => h.name === `blocks.${l}.hook_mlp_out`)!.tensor;
    const add = g.node.find((n) => n.op_type === 'Add' && n.input.includes(mlp) && n.output[0] === plain.arch.hookPoints.find((h) => h.name === `blocks.${l}.hook_resid_post`)!.tensor);
    assert.ok(add, `block ${l}: the residual Add of the MLP output`);
    const squashed = `${mlp}/tanh`;
    add.input = add.input.map((x) => (x === mlp ? squashed : x));
    g.node.splice(g.node.indexOf(add), 0, { name: `/transformer/h.${l}/mlp_post/Squash`, op_type: 'Tanh', domain: '', input: [mlp], output: [squashed], attribute: [] });
  }
  const graph = OnnxGraph.build(model);
  const arch = discover(graph);
  const hooked = new HookedModel(model, graph, arch);
  t.after(() => hooked.dispose());
  const tok = TextTokenizer.load(file);
  const window = 2;
  const [got] = await causalTrace(hooked, tok, { prompt: exp.prompt.text, subject: exp.prompt.subject, target: exp.prompt.answer.text, corruption: { type: 'replace', subject: 'Keloph' }, kinds: ['mlp'], window });

  // The reference: full runs of the corrupted prompt with clean MLP outputs patched in.
  const ids = tok.encode(exp.prompt.text);
  const alt = tok.encode(exp.prompt.text.replace(exp.prompt.subject, 'Keloph'));
  const L = arch.layers;
  const hooks = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_mlp_out`);
  const clean = await hooked.runWithCache(textFeeds(graph, [ids]), hooks);
  const logits = graph.outputs[0].name;
  let worst = 0;
  for (let l = 0; l < L; l++) {
    for (let tok0 = got.subjectRange[0]; tok0 < ids.length; tok0++) {
      const patches = windowLayers(l, window, L).map((k) => ({ hook: hooks[k], rows: [0], positions: [tok0], value: clean.cache.get(hooks[k])! }));
      const r = await hooked.runWithPatches(textFeeds(graph, [alt]), patches, [], [logits]);
      const all = asFloat32(r.outputs[logits]);
      const V = r.outputs[logits].dims[2];
      const p = softmax(all.subarray(all.length - V))[got.answer.id];
      worst = Math.max(worst, Math.abs(p - got.scores[l][tok0]));
    }
  }
  // The blocks stay restartable (a node reading only a patched value, here the Tanh, is still part of its block).
  assert.notEqual(got.sweep.mode, 'full', 'restorations ran from the restored layer on');
  assert.ok(worst < 1e-4, `MLP restoration scores differ from plain patched runs by ${worst} (sweep ${got.sweep.mode})`);
});
