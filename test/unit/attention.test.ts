import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { textFeeds } from '../../src/runtime/feeds';
import { openModel } from '../../src/runtime/inspect';
import { knockoutMask } from '../../src/runtime/instrument/knockout';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { attentionContributions, attentionKnockout, attentionPatterns } from '../../src/runtime/methods/attention';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { SHARED_MODELS, expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';

function open(name: string): { hooked: HookedModel; tok: TextTokenizer } {
  const { model, graph, arch } = openModel(fixture(name));
  return { hooked: new HookedModel(model, graph, arch), tok: TextTokenizer.load(fixture(name)) };
}

for (const name of ['gpt2', 'llama']) {
  const skip = !hasFixture(name) && 'fixture not generated';

  test(`${name}: attention patterns equal the PyTorch reference within 1e-4`, { skip }, async (t) => {
    const exp = expected(name);
    const { hooked, tok } = open(name);
    t.after(() => hooked.dispose());
    const got = await attentionPatterns(hooked, tok, { prompt: exp.prompt.text });
    assert.deepEqual(got.tokens.ids, exp.prompt.ids);
    assert.equal(got.layers.length, exp.config.layers);
    let worst = 0;
    got.layers.forEach((l, i) => {
      assert.equal(l.patterns.length, exp.config.heads, 'query heads, also for grouped KV');
      worst = Math.max(worst, maxAbsDiff(flat(l.patterns), flat(exp.layers.pattern[i])));
    });
    t.diagnostic(`max |pattern diff| ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `patterns differ by ${worst}`);
  });

  test(`${name}: knockout (Geva et al.) equals the PyTorch reference within 1e-4, in one batched sweep`, { skip }, async (t) => {
    const exp = expected(name);
    const ref = exp.knockout;
    const { hooked, tok } = open(name);
    t.after(() => hooked.dispose());
    const got = await attentionKnockout(hooked, tok, {
      prompt: exp.prompt.text,
      target: exp.prompt.answer.text,
      sources: { type: 'subject', subject: exp.prompt.subject },
      window: ref.k,
    });
    assert.equal(got.answer.id, exp.prompt.answer.id);
    assert.equal(got.from, ref.target);
    assert.deepEqual(got.sources, Array.from({ length: ref.sources[1] - ref.sources[0] }, (_, i) => ref.sources[0] + i));
    assert.ok(Math.abs(got.baseline - ref.pClean) < 1e-4, `baseline ${got.baseline} vs ${ref.pClean}`);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    assert.deepEqual(got.layers.map((l) => l.layers), ref.results.map((r: any) => r.layers), 'windows');
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const dp = maxAbsDiff(got.layers.map((l) => l.p), ref.results.map((r: any) => r.p));
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const drc = maxAbsDiff(got.relativeChange, ref.results.map((r: any) => r.relativeChange));
    t.diagnostic(`max |p diff| ${dp.toExponential(2)}, max |relative change diff| ${drc.toExponential(2)}`);
    assert.ok(dp < 1e-4 && drc < 1e-4, `p differs by ${dp}, relative change by ${drc}`);
    // The same sweep by explicit span and explicit indices.
    const span = await attentionKnockout(hooked, tok, { prompt: exp.prompt.text, target: exp.prompt.answer.text, sources: { type: 'span', start: ref.sources[0], end: ref.sources[1] }, window: ref.k, from: -1 });
    assert.deepEqual(span.relativeChange, got.relativeChange);
  });

  test(`${name}: knocking out nothing changes nothing (relative change exactly 0), default window 9 clipped`, { skip }, async (t) => {
    const exp = expected(name);
    const { hooked, tok } = open(name);
    t.after(() => hooked.dispose());
    const got = await attentionKnockout(hooked, tok, { prompt: exp.prompt.text, sources: { type: 'positions', positions: [] } });
    assert.equal(got.window, 9);
    assert.deepEqual(got.relativeChange, new Array(exp.config.layers).fill(0));
    for (const l of got.layers) assert.deepEqual(l.layers, [0, exp.config.layers], 'a window of 9 covers all 4 layers');
    assert.ok(Math.abs(got.baseline - exp.knockout.pClean) < 1e-4);
  });

  test(`${name}: contributions equal the PyTorch reference and sum to the attention output`, { skip }, async (t) => {
    const exp = expected(name);
    const ref = exp.contributions;
    const { hooked, tok } = open(name);
    t.after(() => hooked.dispose());
    const got = await attentionContributions(hooked, tok, { prompt: exp.prompt.text, vectors: true });
    assert.equal(got.position, ref.position);
    const d = maxAbsDiff(flat(got.bySource), flat(ref.norms));
    const db = maxAbsDiff(got.outputBiasNorm, ref.outputBiasNorm);
    // Vector-sum identity, computed here from the returned vectors.
    let identity = 0;
    let headTotals = 0;
    got.vectors!.forEach((heads, l) => {
      const D = got.outputBias![l].length;
      const sum = Float64Array.from(got.outputBias![l]);
      heads.forEach((sources, h) => {
        const hs = new Float64Array(D);
        for (const v of sources) for (let c = 0; c < D; c++) hs[c] += v[c];
        for (let c = 0; c < D; c++) sum[c] += hs[c];
        headTotals = Math.max(headTotals, Math.abs(Math.hypot(...hs) - got.heads[l][h]));
      });
      identity = Math.max(identity, maxAbsDiff(sum, got.attnOut![l]));
    });
    t.diagnostic(`max |norm diff| ${d.toExponential(2)}, bias norm ${db.toExponential(2)}, sum identity ${identity.toExponential(2)}`);
    assert.ok(d < 1e-4, `norms differ by ${d}`);
    assert.ok(db < 1e-4, `bias norms differ by ${db}`);
    assert.ok(identity < 1e-4, `contributions + b_O differ from hook_attn_out by ${identity}`);
    assert.ok(Math.max(...got.maxError) < 1e-4);
    assert.ok(headTotals < 1e-9);
  });
}

const FUSED = path.join(SHARED_MODELS, 'genai-tiny-random-gpt2-fp32', 'past.onnx');
test('fused attention: head-level methods refuse with a clear error', { skip: !fs.existsSync(FUSED) && 'shared model absent' }, async (t) => {
  const { model, graph, arch } = openModel(FUSED);
  const hooked = new HookedModel(model, graph, arch);
  t.after(() => hooked.dispose());
  assert.ok(arch.blocks.length > 0 && arch.blocks[0].attention?.fused, 'discovery marks the attention fused');
  const tok = { encode: () => [1, 2, 3], tokenStrings: (ids: number[]) => ids.map(String), findSpan: () => [0, 1], decode: () => '', continuationToken: () => 0 } as unknown as TextTokenizer;
  const re = /fused Attention op.*unfused export/;
  await assert.rejects(attentionPatterns(hooked, tok, { prompt: 'x', layers: [0] }), (e: Error) => e.name === 'InputError' && re.test(e.message));
  await assert.rejects(attentionKnockout(hooked, tok, { prompt: 'x', sources: { type: 'positions', positions: [0] } }), re);
  await assert.rejects(attentionContributions(hooked, tok, { prompt: 'x' }), re);
});

test('knockout rewrite: a blocked edge gets zero attention, rows are independent, and zero masks change nothing', { skip: !hasFixture('gpt2') && 'fixture not generated' }, async (t) => {
  const exp = expected('gpt2');
  const { hooked } = open('gpt2');
  t.after(() => hooked.dispose());
  const ids = exp.prompt.ids as number[];
  const S = ids.length;
  const h = 'blocks.1.attn.hook_pattern';
  const plain = await hooked.runWithCache(textFeeds(hooked.graph, [ids]), [h]);
  const s = await hooked.prepare({ knockout: [h], capture: [h] });
  const zero = await s.run(textFeeds(hooked.graph, [ids]), { fetch: [h] });
  assert.deepEqual(Array.from(zero.cache.get(h)!.data as Float32Array), Array.from(plain.cache.get(h)!.data as Float32Array), 'default (scalar 0) mask: identical pattern');
  const mask = knockoutMask([{ row: 1, query: S - 1, keys: [1, 2] }], 2, S, s.scoreMaskType(h));
  const out = await s.run(textFeeds(hooked.graph, [ids, ids]), { fetch: [h], scoreMasks: { [h]: mask } });
  const p = out.cache.get(h)!;
  const H = p.dims[1];
  const v = p.data as Float32Array;
  const at = (r: number, head: number, q: number, k: number): number => v[((r * H + head) * S + q) * S + k];
  for (let head = 0; head < H; head++) {
    assert.equal(at(1, head, S - 1, 1), 0);
    assert.equal(at(1, head, S - 1, 2), 0);
    let sum = 0;
    for (let k = 0; k < S; k++) sum += at(1, head, S - 1, k);
    assert.ok(Math.abs(sum - 1) < 1e-6, 'the blocked row still sums to 1');
    assert.ok(at(0, head, S - 1, 1) > 0, 'row 0 is untouched');
    assert.equal(at(1, head, S - 2, 1), at(0, head, S - 2, 1), 'other queries are untouched');
  }
});
