import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { findCrossAttention } from '../../src/runtime/instrument/crossAttention';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { answerToken, localize, windowStarts } from '../../src/runtime/methods/localize';
import type { LocalizeResult } from '../../src/runtime/methods/localize';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, hasFixture } from './helpers/fixtures';

const CLI = path.resolve(__dirname, '../../src/cli.js');
const skip = !hasFixture('encdec') && 'fixture not generated';

function mechanist(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TMPDIR: os.tmpdir() } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function open(file: string, cacheDir?: string): HookedModel {
  const { model, graph, arch } = openModel(fixture('encdec', file));
  return new HookedModel(model, graph, arch, { cacheDir });
}

/** Largest difference of the window and complement scores from the PyTorch reference. */
function check(r: LocalizeResult): { windows: number; complement: number } {
  const ref = expected('encdec').localization;
  assert.equal(r.scores.length, ref.windows.length);
  assert.equal(r.complement.length, ref.complement.length);
  const d = (got: number[], want: { pTarget: number }[]): number => Math.max(...got.map((s, i) => Math.abs(s - want[i].pTarget)));
  return { windows: d(r.scores, ref.windows), complement: d(r.complement, ref.complement) };
}

async function run(hooked: HookedModel, encoder?: string, maxBatchRows?: number): Promise<LocalizeResult> {
  const ref = expected('encdec').localization;
  const tok = TextTokenizer.load(fixture('encdec'));
  const enc = encoder ? openModel(fixture('encdec', encoder)) : undefined;
  return localize(hooked, tok, { prompt: ref.original.text, targetPrompt: ref.target.text, decoderPrompt: ref.decoderPrompt, window: ref.window, maxBatchRows }, { encoder: enc && { model: enc.model, graph: enc.graph } });
}

for (const [file, encoder] of [
  ['model.onnx', undefined],
  ['decoder.onnx', 'encoder.onnx'],
] as const) {
  test(`encdec ${file}${encoder ? ` + ${encoder}` : ''}: window and complement scores equal the PyTorch reference within 1e-4; the best window holds the carrier layers`, { skip }, async (t) => {
    const ref = expected('encdec').localization;
    const hooked = open(file);
    t.after(() => hooked.dispose());
    const r = await run(hooked, encoder);
    assert.deepEqual(r.tokens.original, ref.original.ids);
    assert.deepEqual(r.tokens.target, ref.target.ids);
    assert.deepEqual(r.tokens.decoder, ref.decoderInputIds);
    assert.deepEqual(r.answer, ref.target.answer, 'the default answer is the top prediction for the target prompt');
    assert.deepEqual(r.originalAnswer, ref.original.answer);
    assert.equal(r.layers.length, expected('encdec').config.dec_layers);
    const diff = check(r);
    t.diagnostic(`max |window score diff| ${diff.windows.toExponential(2)}, max |complement diff| ${diff.complement.toExponential(2)}`);
    assert.ok(diff.windows < 1e-4 && diff.complement < 1e-4, JSON.stringify(diff));
    assert.ok(Math.abs(r.baseline.original - ref.none.pTarget) < 1e-4 && Math.abs(r.baseline.target - ref.all.pTarget) < 1e-4);
    const bestBlocks = r.blocks.slice(r.best.start, r.best.start + r.window);
    for (const c of ref.carrierLayers) assert.ok(bestBlocks.includes(c), `best window ${bestBlocks} holds carrier layer ${c}`);
    assert.deepEqual(r.best.layers, bestBlocks.map((b) => `blocks.${b}.cross_attn`));
  });
}

test('encdec: the rewritten graph from the on-disk cache, run in batches of 5 rows, gives the same scores; an explicit answer is that token', { skip }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-loc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const first = open('model.onnx', dir);
  const a = await run(first);
  await first.dispose();
  assert.ok(fs.readdirSync(dir).length > 0, 'cached');
  const second = open('model.onnx', dir);
  t.after(() => second.dispose());
  const b = await run(second, undefined, 5);
  const near = (x: number[], y: number[]): boolean => x.length === y.length && x.every((v, i) => Math.abs(v - y[i]) < 1e-6);
  assert.ok(near(b.scores, a.scores) && near(b.complement, a.complement), JSON.stringify([a.scores, b.scores]));
  const tok = TextTokenizer.load(fixture('encdec'));
  const ref = expected('encdec').localization;
  assert.equal(answerToken(tok, ref.decoderPrompt, ref.target.answer.text), ref.target.answer.id);
  assert.equal(answerToken(tok, ref.decoderPrompt, 'blue'), ref.target.answer.id, 'the space the decoder writes is added');
});

test('window starts: every run of w consecutive layers', () => {
  assert.deepEqual(windowStarts(6, 3), [0, 1, 2, 3]);
  assert.deepEqual(windowStarts(6, 6), [0]);
  assert.deepEqual(windowStarts(2, 3), []);
});

test('structure: the K/V of each cross-attention read the encoder output (one graph) or encoder_hidden_states (decoder file)', { skip }, () => {
  const one = openModel(fixture('encdec'));
  const s1 = findCrossAttention(one.graph, one.arch);
  assert.equal(s1.conditioning.length, 1);
  assert.deepEqual(s1.conditioningInputs, []);
  assert.equal(s1.decoderIds, 'decoder_input_ids');
  assert.match(s1.conditioning[0], /encoder/);
  const dec = openModel(fixture('encdec', 'decoder.onnx'));
  const s2 = findCrossAttention(dec.graph, dec.arch);
  assert.deepEqual(s2.conditioning, ['encoder_hidden_states']);
  assert.deepEqual(s2.conditioningInputs, ['encoder_hidden_states']);
  assert.equal(s2.decoderIds, 'input_ids');
});

test('structure: an attention whose K/V read the decoder stream is refused as cross-attention', { skip }, () => {
  const { graph, arch } = openModel(fixture('encdec'));
  // Pretend block 1's self-attention were its cross-attention.
  const blocks = arch.blocks.map((b) => (b.index === 1 ? { ...b, crossAttention: { ...b.attention!, cross: true } } : b));
  assert.throws(() => findCrossAttention(graph, { ...arch, blocks }), /blocks\.1\.cross_attn.*decoder's own tokens/);
});

test('a model without cross-attention, an encoder alone, a decoder without its encoder, unequal prompt lengths: clear errors', { skip: skip || (!hasFixture('gpt2') && 'fixture not generated') }, async (t) => {
  const gpt2 = openModel(fixture('gpt2'));
  assert.throws(() => findCrossAttention(gpt2.graph, gpt2.arch), /no cross-attention layers/);
  const enc = openModel(fixture('encdec', 'encoder.onnx'));
  assert.throws(() => findCrossAttention(enc.graph, enc.arch), /only the encoder.*--encoder/);
  const tok = TextTokenizer.load(fixture('encdec'));
  const dec = open('decoder.onnx');
  t.after(() => dec.dispose());
  await assert.rejects(localize(dec, tok, { prompt: 'the big ball is red', targetPrompt: 'the big ball is blue' }), /pass the encoder file too/);
  const one = open('model.onnx');
  t.after(() => one.dispose());
  await assert.rejects(localize(one, tok, { prompt: 'the big ball is red', targetPrompt: 'the cup is blue' }), /equal token length/);
  await assert.rejects(localize(one, tok, { prompt: 'the big ball is red', targetPrompt: 'the big ball is blue', window: 7 }), /larger than the model's 6 cross-attention layers/);
});

test('CLI localize --json: the contract fields, one graph and encoder + decoder files', { skip }, () => {
  const ref = expected('encdec').localization;
  const args = ['--prompt', ref.original.text, '--target-prompt', ref.target.text, '--decoder-prompt', ref.decoderPrompt, '--window', String(ref.window), '--json', '--quiet'];
  for (const model of [[fixture('encdec')], [fixture('encdec', 'decoder.onnx'), '--encoder', fixture('encdec', 'encoder.onnx')]]) {
    const r = mechanist('localize', ...model, ...args);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    for (const k of ['layers', 'window', 'scores', 'best', 'complement', 'baseline']) assert.ok(k in out, k);
    assert.equal(out.window, ref.window);
    assert.equal(out.layers.length, expected('encdec').config.dec_layers);
    assert.equal(out.scores.length, ref.windows.length);
    out.scores.forEach((s: number, i: number) => assert.ok(Math.abs(s - ref.windows[i].pTarget) < 1e-4));
    out.complement.forEach((s: number, i: number) => assert.ok(Math.abs(s - ref.complement[i].pTarget) < 1e-4));
    assert.deepEqual(Object.keys(out.best).sort(), ['layers', 'start']);
    assert.deepEqual(out.best.layers, out.layers.slice(out.best.start, out.best.start + ref.window));
    for (const c of ref.carrierLayers) assert.ok(out.best.layers.includes(`blocks.${c}.cross_attn`));
    assert.deepEqual(Object.keys(out.baseline).sort(), ['original', 'target']);
  }
});

test('CLI localize: a model without cross-attention exits 1 with one line', { skip: !hasFixture('gpt2') && 'fixture not generated' }, () => {
  const r = mechanist('localize', fixture('gpt2'), '--prompt', 'a b', '--target-prompt', 'a c', '--json');
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /no cross-attention layers/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});
