import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expected, fixture, hasFixture } from './helpers/fixtures';

// tsc compiles src/cli.ts to out/src/cli.js: the same code as `npx mechanist`.
const CLI = path.resolve(__dirname, '../../src/cli.js');

function mechanist(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TMPDIR: os.tmpdir() } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('inspect --json prints the contract fields', { skip: !hasFixture('gpt2') && 'fixture not generated' }, () => {
  const r = mechanist('inspect', fixture('gpt2'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const cfg = expected('gpt2').config;
  assert.equal(out.family, 'gpt2');
  assert.equal(out.layers, cfg.layers);
  assert.equal(out.heads, cfg.heads);
  assert.equal(out.headDim, cfg.d / cfg.heads);
  assert.equal(out.dModel, cfg.d);
  assert.equal(out.blocks.length, cfg.layers);
  assert.deepEqual(Object.keys(out.blocks[0]).filter((k) => ['index', 'attention', 'mlp'].includes(k)).sort(), ['attention', 'index', 'mlp']);
  assert.ok(out.hookPoints.includes('hook_embed') && out.hookPoints.includes('blocks.0.hook_resid_post'));
  assert.deepEqual(out.inputs.map((i: { name: string }) => i.name), ['input_ids', 'attention_mask']);
  assert.deepEqual(out.outputs.map((i: { name: string }) => i.name), ['logits']);
});

test('bad files and arguments: one line on stderr and a non-zero exit', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-cli-'));
  fs.writeFileSync(path.join(dir, 'empty.onnx'), '');
  fs.writeFileSync(path.join(dir, 'text.onnx'), 'hello');
  for (const args of [['inspect', path.join(dir, 'empty.onnx')], ['inspect', path.join(dir, 'text.onnx')], ['inspect', path.join(dir, 'absent.onnx')], ['inspect'], ['nosuchcommand']]) {
    const r = mechanist(...args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
  }
});

test('trace --json: the result object, and --kind all gives the three kinds', { skip: !hasFixture('gpt2') && 'fixture not generated' }, () => {
  const p = expected('gpt2').prompt;
  const one = mechanist('trace', fixture('gpt2'), '--prompt', p.text, '--subject', p.subject, '--target', p.answer.text, '--samples', '3', '--json', '--quiet');
  assert.equal(one.code, 0, one.stderr);
  const r = JSON.parse(one.stdout);
  for (const k of ['kind', 'window', 'inputTokens', 'subjectRange', 'answer', 'highScore', 'lowScore', 'scores']) assert.ok(k in r, k);
  assert.equal(r.kind, 'residual');
  assert.deepEqual(r.subjectRange, p.subjectRange);
  assert.equal(r.scores.length, expected('gpt2').config.layers);
  assert.equal(r.scores[0].length, p.ids.length);
  const all = mechanist('trace', fixture('gpt2'), '--prompt', p.text, '--subject', p.subject, '--kind', 'all', '--window', '2', '--samples', '2', '--json', '--quiet');
  assert.equal(all.code, 0, all.stderr);
  const a = JSON.parse(all.stdout);
  assert.deepEqual(Object.keys(a).sort(), ['attn', 'mlp', 'residual']);
  assert.equal(a.mlp.window, 2);
  assert.equal(a.residual.highScore, a.mlp.highScore, 'one clean run shared');
  assert.equal(a.residual.lowScore, a.attn.lowScore, 'one corrupted run shared');
});

test('trace: subject absent, unequal replacement, too long a prompt, missing tokenizer: exit 1 with one line', { skip: !hasFixture('gpt2') && 'fixture not generated' }, () => {
  const m = fixture('gpt2');
  const p = expected('gpt2').prompt;
  const cases: [string[], RegExp][] = [
    [['--prompt', p.text, '--subject', 'Nobody'], /does not occur in the prompt/],
    [['--prompt', p.text, '--subject', p.subject, '--corrupt-subject', 'Q'], /needs equal token lengths/],
    [['--prompt', 'a '.repeat(200), '--subject', 'a'], /accepts at most \d+/],
    [['--prompt', p.text, '--subject', p.subject, '--tokenizer', '/nonexistent/tokenizer.json'], /does not exist/],
  ];
  for (const [args, re] of cases) {
    const r = mechanist('trace', m, ...args, '--quiet');
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
