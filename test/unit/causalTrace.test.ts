import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discover } from '../../src/runtime/architecture/discover';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel, PreparedSession } from '../../src/runtime/instrument/hookedModel';
import { causalTrace, planBatches } from '../../src/runtime/methods/causalTrace';
import type { TraceKind, TraceRequest } from '../../src/runtime/methods/causalTrace';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';
import { float16Stories, hasStories, rawIdTokenizer } from './helpers/stories';

for (const name of ['gpt2', 'llama']) {
  test(`${name}: causal traces equal ROME-style PyTorch references within 1e-4`, { skip: !hasFixture(name) && 'fixture not generated' }, async (t) => {
    const exp = expected(name);
    const { model, graph, arch } = openModel(fixture(name));
    const hooked = new HookedModel(model, graph, arch);
    t.after(() => hooked.dispose());
    const tok = TextTokenizer.load(fixture(name));
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    for (const ref of exp.causalTrace as any[]) {
      const corruption =
        ref.corruption.type === 'replace'
          ? ({ type: 'replace', subject: ref.corruption.subject } as const)
          : ({ type: 'noise', noise: Float32Array.from(flat(ref.corruption.noise)), samples: ref.corruption.noise.length } as const);
      const [got] = await causalTrace(hooked, tok, {
        prompt: exp.prompt.text,
        subject: exp.prompt.subject,
        target: exp.prompt.answer.text,
        corruption,
        kinds: [ref.kind as TraceKind],
        window: ref.window,
      });
      const label = `${ref.kind}/${ref.corruption.type}`;
      assert.deepEqual(got.inputTokens.ids, ref.inputTokens.ids, `${label}: tokens`);
      assert.deepEqual(got.subjectRange, ref.subjectRange, `${label}: subject range`);
      assert.equal(got.answer.id, ref.answer.id, `${label}: answer`);
      assert.ok(Math.abs(got.highScore - ref.highScore) < 1e-4, `${label}: high ${got.highScore} vs ${ref.highScore}`);
      assert.ok(Math.abs(got.lowScore - ref.lowScore) < 1e-4, `${label}: low ${got.lowScore} vs ${ref.lowScore}`);
      const diff = maxAbsDiff(flat(got.scores), flat(ref.scores));
      assert.ok(diff < 1e-4, `${label}: scores differ by ${diff}`);
      // The numbers above come from runs that start at the restored layer and token.
      assert.equal(got.sweep.mode, 'suffix', `${label}: restorations ran as ${got.sweep.mode}`);
    }
  });
}

test('batches of a suffix sweep: latest tokens first, a new run where its positions would cost more than a run', () => {
  const jobs = Array.from({ length: 10 }, (_, i) => ({ token: i + 2 }));
  const plain = planBatches(jobs, 10, 64, 0);
  assert.deepEqual(plain.map((b) => b.length), [6, 4], 'without suffix runs: full batches in order');
  const suffix = planBatches(jobs, 10, 64, 12);
  assert.deepEqual(suffix.flat().map((j) => j.token).sort((a, b) => a - b), jobs.map((j) => j.token), 'every job once');
  for (const b of suffix) assert.ok(b.length * 10 <= 64, 'at most 64 rows a run');
  for (let i = 1; i < suffix.length; i++) assert.ok(Math.min(...suffix[i - 1].map((j) => j.token)) >= Math.max(...suffix[i].map((j) => j.token)), 'runs ordered by token');
  const cost = (bs: { token: number }[][]): number => bs.reduce((c, b) => c + 32 + b.length * 10 * (12 - Math.min(...b.map((j) => j.token))), 0);
  assert.ok(cost(suffix) < cost(plain.map((b) => b)), 'cheaper than full batches of the same jobs');
});

/** Runs `fn` with every suffix run's last logits changed by `perturb` (a graph the rewrite got wrong). */
async function withBrokenSuffixRuns<T>(perturb: (logits: Float32Array) => void, fn: () => Promise<T>): Promise<T> {
  const run = PreparedSession.prototype.run;
  PreparedSession.prototype.run = async function (this: PreparedSession, feeds, opts) {
    const r = await run.call(this, feeds, opts);
    if (opts?.start?.past && r.lastLogits) perturb(r.lastLogits.data as Float32Array);
    return r;
  };
  try {
    return await fn();
  } finally {
    PreparedSession.prototype.run = run;
  }
}

/** The gpt2 fixture's residual trace with symmetric replacement, and its PyTorch reference. */
function gpt2ReplaceTrace(t: { after(fn: () => unknown): void }): { hooked: HookedModel; tok: TextTokenizer; req: TraceRequest; ref: { scores: number[][] } } {
  const exp = expected('gpt2');
  const { model, graph, arch } = openModel(fixture('gpt2'));
  const hooked = new HookedModel(model, graph, arch);
  t.after(() => hooked.dispose());
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const ref = (exp.causalTrace as any[]).find((r) => r.kind === 'residual' && r.corruption.type === 'replace');
  const req: TraceRequest = { prompt: exp.prompt.text, subject: exp.prompt.subject, target: exp.prompt.answer.text, corruption: { type: 'replace', subject: ref.corruption.subject }, kinds: ['residual'], window: ref.window };
  return { hooked, tok: TextTokenizer.load(fixture('gpt2')), req, ref };
}

test('gpt2: when a suffix run does not reproduce the corrupted run, restorations fall back to full-length restarts with the same scores', { skip: !hasFixture('gpt2') && 'fixture not generated' }, async (t) => {
  const { hooked, tok, req, ref } = gpt2ReplaceTrace(t);
  const [got] = await withBrokenSuffixRuns((l) => void (l[0] += 1), () => causalTrace(hooked, tok, req));
  assert.equal(got.sweep.mode, 'restart');
  assert.ok(maxAbsDiff(flat(got.scores), flat(ref.scores)) < 1e-4, 'scores still equal the reference');
});

// A float16 model: a suffix run and the corrupted run differ by float16 rounding of the logits (an
// ulp or two at their scale), which must not count as a graph the suffix rewrite got wrong.
test('stories260K in float16: noise traces run as suffix runs, with the scores of full-length restarts', { skip: !hasStories() && 'shared models absent' }, async (t) => {
  const model = float16Stories();
  const graph = OnnxGraph.build(model);
  const hooked = new HookedModel(model, graph, discover(graph));
  t.after(() => hooked.dispose());
  const tok = rawIdTokenizer();
  const req = { subject: '378', corruption: { type: 'noise', samples: 10 } as const, kinds: ['residual', 'mlp'] as TraceKind[], window: 2 };
  for (const prompt of ['1 403 378 429 362 102 12', '378 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33']) {
    const got = await causalTrace(hooked, tok, { ...req, prompt });
    for (const r of got) assert.equal(r.sweep.mode, 'suffix', `${prompt}: ${r.kind} restorations ran as ${r.sweep.mode}`);
    // The same trace with suffix runs refused (every suffix run's logits perturbed): full-length restarts.
    const ref = await withBrokenSuffixRuns((l) => void ((l as unknown as Uint16Array)[0] = 0x7bff), () => causalTrace(hooked, tok, { ...req, prompt }));
    for (let k = 0; k < got.length; k++) {
      assert.equal(ref[k].sweep.mode, 'restart');
      const d = maxAbsDiff(flat(got[k].scores), flat(ref[k].scores));
      assert.ok(d < 5e-3, `${prompt}: ${got[k].kind} scores differ from full-length restarts by ${d}`);
    }
  }
});

test('gpt2: a suffix run whose logits are NaN (e.g. a query row left with no key to attend to) does not pass the probe', { skip: !hasFixture('gpt2') && 'fixture not generated' }, async (t) => {
  const { hooked, tok, req, ref } = gpt2ReplaceTrace(t);
  const [got] = await withBrokenSuffixRuns((l) => void (l[0] = NaN), () => causalTrace(hooked, tok, req));
  assert.equal(got.sweep.mode, 'restart');
  assert.ok(maxAbsDiff(flat(got.scores), flat(ref.scores)) < 1e-4, 'scores still equal the reference');
});
