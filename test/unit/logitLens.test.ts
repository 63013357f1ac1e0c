import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { logitLens } from '../../src/runtime/methods/logitLens';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';

for (const name of ['gpt2', 'llama']) {
  test(`${name}: logit lens equals the PyTorch reference within 1e-4`, { skip: !hasFixture(name) && 'fixture not generated' }, async (t) => {
    const exp = expected(name);
    const ref = exp.logitLens;
    const { model, graph, arch } = openModel(fixture(name));
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const tok = TextTokenizer.load(fixture(name));
    const got = await logitLens(hooked, tok, { prompt: exp.prompt.text, target: exp.prompt.answer.text, topK: ref.topK, maxBatchRows: 3 });
    assert.equal(got.answer.id, ref.answer);
    assert.equal(got.layers.length, exp.config.layers);
    const dp = maxAbsDiff(flat(got.layers.map((l) => l.pAnswer)), flat(ref.pAnswer));
    let dtop = 0;
    got.layers.forEach((l, i) => {
      l.top.forEach((pos, s) => {
        const r = ref.top[i][s];
        assert.deepEqual(pos.map((x) => x.id), r.ids, `layer ${i} position ${s}: top ids`);
        dtop = Math.max(dtop, maxAbsDiff(pos.map((x) => x.p), r.probs));
        assert.deepEqual(pos.map((x) => x.token), r.ids.map((id: number) => tok.decode([id])));
      });
    });
    t.diagnostic(`max |p(answer) diff| ${dp.toExponential(2)}, max |top-k p diff| ${dtop.toExponential(2)}`);
    assert.ok(dp < 1e-4 && dtop < 1e-4, `p(answer) differs by ${dp}, top-k by ${dtop}`);
    // Without a target the answer is the clean top-1 at the last position (here the same token).
    const dflt = await logitLens(hooked, tok, { prompt: exp.prompt.text });
    assert.equal(dflt.answer.id, exp.prompt.answer.id);
    assert.equal(dflt.topK, 5);
  });
}
