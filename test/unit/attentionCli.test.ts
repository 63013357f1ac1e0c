import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SHARED_MODELS, expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';

// tsc compiles src/cli.ts to out/src/cli.js: the same code as `npx mechanist`.
const CLI = path.resolve(__dirname, '../../src/cli.js');

function mechanist(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TMPDIR: os.tmpdir() } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(...args: string[]): any /* eslint-disable-line @typescript-eslint/no-explicit-any */ {
  const r = mechanist(...args, '--json', '--quiet');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

for (const name of ['gpt2', 'llama']) {
  const skip = !hasFixture(name) && 'fixture not generated';

  test(`${name}: attention --json prints {layer, tokens, patterns[head][query][key]} equal to the reference`, { skip }, () => {
    const exp = expected(name);
    const out = json('attention', fixture(name), '--prompt', exp.prompt.text, '--layer', '2');
    assert.equal(out.layer, 2);
    assert.equal(out.tokens.length, exp.prompt.ids.length);
    assert.equal(out.patterns.length, exp.config.heads);
    assert.ok(maxAbsDiff(flat(out.patterns), flat(exp.layers.pattern[2])) < 1e-4);
    const one = json('attention', fixture(name), '--prompt', exp.prompt.text, '--layer', '1', '--head', '3');
    assert.equal(one.patterns.length, 1);
    assert.deepEqual(one.heads, [3]);
    assert.ok(maxAbsDiff(flat(one.patterns[0]), flat(exp.layers.pattern[1][3])) < 1e-4);
  });

  test(`${name}: knockout --json prints {answer, baseline, relativeChange[layer]} equal to the reference`, { skip }, () => {
    const exp = expected(name);
    const ref = exp.knockout;
    const out = json('knockout', fixture(name), '--prompt', exp.prompt.text, '--target', exp.prompt.answer.text, '--sources', 'subject', '--subject', exp.prompt.subject, '--window', String(ref.k));
    assert.equal(out.answer.id, exp.prompt.answer.id);
    assert.ok(Math.abs(out.baseline - ref.pClean) < 1e-4);
    assert.equal(out.relativeChange.length, exp.config.layers);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    assert.ok(maxAbsDiff(out.relativeChange, ref.results.map((r: any) => r.relativeChange)) < 1e-4);
    const idx = Array.from({ length: ref.sources[1] - ref.sources[0] }, (_, i) => ref.sources[0] + i).join(',');
    const byIndex = json('knockout', fixture(name), '--prompt', exp.prompt.text, '--sources', idx, '--from', String(ref.target), '--window', String(ref.k));
    assert.deepEqual(byIndex.relativeChange, out.relativeChange, 'explicit indices = the subject span; default answer = the clean top-1');
  });

  test(`${name}: contributions --json prints {tokens, heads[layer][head], bySource[layer][head][source]} equal to the reference`, { skip }, () => {
    const exp = expected(name);
    const out = json('contributions', fixture(name), '--prompt', exp.prompt.text);
    assert.equal(out.tokens.length, exp.prompt.ids.length);
    assert.equal(out.heads.length, exp.config.layers);
    assert.equal(out.heads[0].length, exp.config.heads);
    assert.ok(maxAbsDiff(flat(out.bySource), flat(exp.contributions.norms)) < 1e-4);
    const earlier = json('contributions', fixture(name), '--prompt', exp.prompt.text, '--position', '2');
    assert.equal(earlier.position, 2);
    // Position 2 attends to positions 0..2 only.
    for (const heads of earlier.bySource) for (const src of heads) assert.deepEqual(src.slice(3), new Array(src.length - 3).fill(0));
  });

  test(`${name}: lens --json prints {tokens, layers[{top[position][k] {token, p}, pAnswer[position]}]} equal to the reference`, { skip }, () => {
    const exp = expected(name);
    const ref = exp.logitLens;
    const out = json('lens', fixture(name), '--prompt', exp.prompt.text, '--target', exp.prompt.answer.text, '--top', '3');
    assert.equal(out.tokens.length, exp.prompt.ids.length);
    assert.equal(out.layers.length, exp.config.layers);
    assert.ok(maxAbsDiff(flat(out.layers.map((l: { pAnswer: number[] }) => l.pAnswer)), flat(ref.pAnswer)) < 1e-4);
    const top = out.layers[1].top;
    assert.equal(top.length, exp.prompt.ids.length);
    assert.equal(top[0].length, 3);
    assert.equal(typeof top[0][0].token, 'string');
    assert.ok(Math.abs(top[0][0].p - ref.top[1][0].probs[0]) < 1e-4);
  });
}

test('attention CLI errors: usage errors exit 2, input errors exit 1, one line on stderr', { skip: !hasFixture('gpt2') && 'fixture not generated' }, () => {
  const m = fixture('gpt2');
  const p = expected('gpt2').prompt.text;
  const cases: [string[], number, RegExp][] = [
    [['attention', m, '--prompt', p], 2, /--layer is required/],
    [['attention', m, '--prompt', p, '--layer', 'x'], 2, /--layer must be an integer/],
    [['attention', m, '--prompt', p, '--layer', '9'], 1, /layer 9 does not exist/],
    [['attention', m, '--prompt', p, '--layer', '0', '--head', '7'], 1, /head 7 does not exist/],
    [['knockout', m, '--prompt', p], 2, /--sources is required/],
    [['knockout', m, '--prompt', p, '--sources', 'subject'], 2, /needs --subject/],
    [['knockout', m, '--prompt', p, '--sources', 'a,b'], 2, /--sources must be/],
    [['knockout', m, '--prompt', p, '--sources', '40'], 1, /outside the prompt/],
    [['knockout', m, '--prompt', p, '--sources', 'subject', '--subject', 'Nobody'], 1, /does not occur in the prompt/],
    [['contributions', m, '--prompt', p, '--position', '99'], 1, /outside the prompt/],
    [['lens', m, '--prompt', p, '--top', '0'], 2, /--top must be a positive integer/],
  ];
  for (const [args, code, re] of cases) {
    const r = mechanist(...args, '--quiet');
    assert.equal(r.code, code, `${args.slice(2).join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

const FUSED = path.join(SHARED_MODELS, 'genai-tiny-random-gpt2-fp32', 'past.onnx');
test('fused attention: head-level commands exit 1 naming the fused op', { skip: (!fs.existsSync(FUSED) || !hasFixture('gpt2')) && 'shared model absent' }, () => {
  for (const args of [['attention', '--layer', '0'], ['knockout', '--sources', '0'], ['contributions']]) {
    const [cmd, ...rest] = args;
    const r = mechanist(cmd, FUSED, '--prompt', 'The cat', '--tokenizer', fixture('gpt2', 'tokenizer.json'), ...rest, '--quiet');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /fused Attention op.*unfused export/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
