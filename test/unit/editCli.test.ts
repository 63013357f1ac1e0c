import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
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

const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

test('edit --json on a text encoder: the contract fields, a new file, the original unchanged', { skip: !hasFixture('clip-text') && 'fixture not generated' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-editcli-'));
  const file = fixture('clip-text');
  const before = sha(file);
  const out = path.join(dir, 'edited.onnx');
  const r = mechanist('edit', file, '--layer', 'blocks.0.attn', '--source', 'red circle', '--target', 'blue circle', '--out', out, '--json', '--quiet');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  for (const k of ['weight', 'layer', 'keys', 'seconds', 'before', 'after', 'preservation']) assert.ok(k in j, k);
  assert.equal(j.weight, expected('clip-text').edit.weight);
  assert.equal(j.layer, 'blocks.0.attn');
  assert.equal(j.keys, 4);
  assert.equal(j.after.closer, 4);
  assert.ok(fs.existsSync(out));
  assert.equal(sha(file), before);
  // auto on a text encoder: the first self-attention output, said so.
  const auto = mechanist('edit', file, '--layer', 'auto', '--source', 'red circle', '--target', 'blue circle', '--out', path.join(dir, 'auto.onnx'), '--json', '--quiet');
  assert.equal(auto.code, 0, auto.stderr);
  const a = JSON.parse(auto.stdout);
  assert.equal(a.layer, 'blocks.0.attn');
  assert.equal(a.localisation.method, 'fixed');
  // A projection by hook name, and by weight name.
  const q = mechanist('edit', file, '--layer', 'blocks.1.attn.q', '--source', 'red circle', '--target', 'blue circle', '--out', path.join(dir, 'q.onnx'), '--json', '--quiet');
  assert.equal(q.code, 0, q.stderr);
  assert.equal(JSON.parse(q.stdout).weight, 'text_model.encoder.layers.1.self_attn.q_proj.weight');
  assert.equal(sha(file), before);
});

test('edit --json on a language model: templates file, --layer auto by causal trace, top predictions', { skip: !hasFixture('gpt2') && 'fixture not generated' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-editcli-'));
  const file = fixture('gpt2');
  const before = sha(file);
  const templates = path.join(dir, 'templates.txt');
  fs.writeFileSync(templates, '# relation templates\n{} lives in the city of\nThe job of {} is\n');
  const out = path.join(dir, 'edited.onnx');
  const r = mechanist('edit', file, '--layer', 'auto', '--source', 'Maroph', '--target', 'Tavane', '--templates', templates, '--positions', 'last-and-after', '--samples', '3', '--out', out, '--json', '--quiet');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  for (const k of ['weight', 'layer', 'keys', 'seconds', 'before', 'after', 'preservation']) assert.ok(k in j, k);
  assert.equal(j.localisation.method, 'causal-trace');
  assert.equal(j.localisation.scores.length, expected('gpt2').config.layers);
  assert.match(j.layer, /^blocks\.\d\.mlp$/);
  assert.equal(j.after.prompts.length, 2);
  assert.ok(j.after.prompts[0].top.length === 5 && 'p' in j.after.prompts[0].top[0]);
  assert.equal(sha(file), before);
});

test('edit: usage errors and failing writes give one line, a non-zero exit and no file', { skip: !hasFixture('gpt2') && 'fixture not generated' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-editcli-'));
  const file = fixture('gpt2');
  const base = ['edit', file, '--source', 'Maroph', '--target', 'Tavane'];
  const cases: string[][] = [
    [...base, '--layer', 'blocks.0.mlp', '--out', path.join(dir, 'x.onnx')], // no templates for a language model
    [...base, '--layer', 'blocks.9.mlp', '--templates', '/dev/null', '--out', path.join(dir, 'x.onnx')],
    [...base, '--layer', 'blocks.0.mlp', '--lambda', '-1', '--out', path.join(dir, 'x.onnx')],
    [...base, '--layer', 'blocks.0.mlp', '--out', file],
    ['edit', file, '--layer', 'blocks.0.mlp', '--source', 'Maroph', '--target', 'Tavane'],
  ];
  const templates = path.join(dir, 't.txt');
  fs.writeFileSync(templates, '{} lives in the city of\n');
  cases.push([...base, '--layer', 'blocks.0.mlp', '--templates', templates, '--out', path.join(dir, 'missing', 'x.onnx')]);
  cases.push([...base, '--layer', 'blocks.0.mlp', '--templates', templates, '--out', file]);
  const before = sha(file);
  for (const args of cases) {
    const r = mechanist(...args, '--quiet');
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
  }
  assert.deepEqual(fs.readdirSync(dir).sort(), ['t.txt']);
  assert.equal(sha(file), before);
  assert.deepEqual(fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.tmp')), []);
});

test('edit --json on an encoder-decoder (decoder.onnx + --encoder): cross-attention K/V of layers 2-3, the decoder prompt, one file; a decoder without its encoder is refused in one line', { skip: !hasFixture('encdec') && 'fixture not generated' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-editcli-'));
  const decoder = fixture('encdec', 'decoder.onnx');
  const encoder = fixture('encdec', 'encoder.onnx');
  const hashes = [decoder, encoder].map(sha);
  const templates = path.join(dir, 'templates.txt');
  fs.writeFileSync(templates, ['big', 'small', 'tiny', 'huge'].flatMap((s) => ['ball', 'box', 'cup'].map((o) => `the ${s} ${o} is {}`)).join('\n'));
  const out = path.join(dir, 'edited.onnx');
  const args = ['edit', decoder, '--encoder', encoder, '--layer', 'blocks.2.cross_attn.kv,blocks.3.cross_attn.kv', '--source', 'red', '--target', 'blue', '--templates', templates, '--decoder-prompt', 'colour:', '--out', out];
  const r = mechanist(...args, '--json', '--quiet');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  for (const k of ['weight', 'layer', 'keys', 'seconds', 'before', 'after', 'preservation']) assert.ok(k in j, k);
  assert.equal(j.kind, 'encoder-decoder');
  assert.equal(j.weights.length, 4);
  assert.equal(j.weight, j.weights.join(', '));
  assert.equal(j.keys, 12);
  assert.deepEqual(j.decoder.ids, expected('encdec').localization.decoderInputIds);
  assert.equal(j.before.hits, 0);
  assert.equal(j.after.hits, 12, JSON.stringify(j.after.prompts.map((p: { top: { text: string }[] }) => p.top[0].text)));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['edited.onnx', 'templates.txt']);
  assert.deepEqual([decoder, encoder].map(sha), hashes);
  // The text form says what was edited and with which decoder prompt.
  const t = mechanist(...args.slice(0, -1), path.join(dir, 'text.onnx'), '--quiet');
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /decoder prompt "colour:"/);
  assert.match(t.stdout, /12\/12 after/);
  // Without the encoder file: one line naming --encoder, nothing written.
  const bad = mechanist('edit', decoder, '--layer', 'blocks.2.cross_attn.v', '--source', 'red', '--target', 'blue', '--templates', templates, '--out', path.join(dir, 'bad.onnx'), '--quiet');
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /--encoder/);
  assert.ok(!fs.existsSync(path.join(dir, 'bad.onnx')));
});
