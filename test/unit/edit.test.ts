import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closedFormUpdate } from '../../src/runtime/methods/closedForm';
import { Random } from '../../src/runtime/random';

/** Generic dense solve (Gauss-Jordan, partial pivoting): A X = B, A n x n, B n x m, plain arrays. */
function denseSolve(A: number[][], B: number[][]): number[][] {
  const n = A.length;
  const a = A.map((r, i) => [...r, ...B[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const piv = a[c][c];
    for (let k = 0; k < a[c].length; k++) a[c][k] /= piv;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c];
      for (let k = 0; k < a[r].length; k++) a[r][k] -= f * a[c][k];
    }
  }
  return a.map((r) => r.slice(n));
}

/** W' = (lambda W + V K^T + mu W U U^T)(lambda I + K K^T + mu U U^T)^-1 straight from the formula; W [out][in], K/U as lists of keys. */
function denseReference(W: number[][], K: number[][], V: number[][], lambda: number, U: number[][] = [], mu = 0): number[][] {
  const dIn = W[0].length;
  const A = Array.from({ length: dIn }, (_, i) => Array.from({ length: dIn }, (_, j) => (i === j ? lambda : 0) + K.reduce((s, k) => s + k[i] * k[j], 0) + mu * U.reduce((s, u) => s + u[i] * u[j], 0)));
  // B = lambda W + V K^T + mu W U U^T  [out][in]; W' A = B  <=>  A W'^T = B^T (A symmetric).
  const B = W.map((w, o) =>
    Array.from({ length: dIn }, (_, i) => lambda * w[i] + K.reduce((s, k, j) => s + V[j][o] * k[i], 0) + mu * U.reduce((s, u) => s + w.reduce((t, x, c) => t + x * u[c], 0) * u[i], 0)),
  );
  const BT = Array.from({ length: dIn }, (_, i) => B.map((r) => r[i]));
  const XT = denseSolve(A, BT);
  return W.map((_, o) => XT.map((r) => r[o]));
}

function randn(r: Random, n: number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => r.gaussian() * scale);
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

test('closed form: the Woodbury update equals a dense solve of the formula (float64), both layouts, both backends, with and without preservation', async () => {
  const r = new Random(7);
  const dOut = 23;
  const dIn = 37;
  const n = 6;
  const Wrows = Array.from({ length: dOut }, () => Array.from(randn(r, dIn, 0.1), (x) => Math.fround(x)));
  const Kf = randn(r, n * dIn);
  const Ktf = randn(r, n * dIn);
  const Uf = randn(r, 9 * dIn);
  const rows = (f: Float64Array, len: number): number[][] => Array.from({ length: f.length / len }, (_, j) => Array.from(f.subarray(j * len, (j + 1) * len)));
  const K = rows(Kf, dIn);
  const Kt = rows(Ktf, dIn);
  const U = rows(Uf, dIn);
  const V = Kt.map((k) => Wrows.map((w) => w.reduce((s, x, i) => s + x * k[i], 0))); // n x out
  const Wout = Float32Array.from(Wrows.flat());
  const Win = Float32Array.from({ length: dIn * dOut }, (_, x) => Wrows[x % dOut][Math.floor(x / dOut)]);
  let worst = 0;
  for (const [lambda, mu] of [[0.01, 0], [0.5, 0], [0.01, 2]]) {
    const ref = denseReference(Wrows, K, V, lambda, mu ? U : [], mu);
    const refDelta = ref.map((row, o) => row.map((x, i) => x - Wrows[o][i]));
    for (const backend of ['js', 'ort'] as const) {
      for (const layout of ['out-in', 'in-out'] as const) {
        for (const how of ['targetKeys', 'values'] as const) {
          const got = await closedFormUpdate({
            weight: layout === 'out-in' ? Wout : Win,
            outFeatures: dOut,
            inFeatures: dIn,
            layout,
            keys: Kf,
            ...(how === 'targetKeys' ? { targetKeys: Ktf } : { values: Float64Array.from(V.flat()) }),
            lambda,
            preserve: mu ? { keys: Uf, weight: mu } : undefined,
            backend,
            keepDelta: true,
          });
          const d = got.delta!;
          const flatRef = layout === 'out-in' ? refDelta.flat() : Array.from({ length: dIn * dOut }, (_, x) => refDelta[x % dOut][Math.floor(x / dOut)]);
          const rel = relDiff(d, flatRef);
          worst = Math.max(worst, rel);
          assert.ok(rel < 1e-5, `lambda ${lambda} mu ${mu} ${backend} ${layout} ${how}: relative difference ${rel}`);
        }
      }
    }
  }
  console.log(`closed form vs dense solve: max relative difference ${worst.toExponential(2)}`);
});

// ---------------------------------------------------------------------------------------------
// On models.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { conceptEdit } from '../../src/runtime/methods/edit';
import type { EditRequest, EditResult } from '../../src/runtime/methods/edit';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, flat, hasFixture } from './helpers/fixtures';

const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-edit-'));

async function edit(file: string, req: EditRequest, encoder?: string, tokenizer = file): Promise<EditResult> {
  const { model, graph, arch } = openModel(file);
  const hooked = new HookedModel(model, graph, arch);
  const enc = encoder ? openModel(encoder) : undefined;
  try {
    return await conceptEdit(hooked, TextTokenizer.load(tokenizer), req, undefined, undefined, { encoder: enc && { model: enc.model, graph: enc.graph } });
  } finally {
    await hooked.dispose();
  }
}

function weightOf(file: string, name: string): Float32Array {
  const m = OnnxModel.load(file);
  return m.tensorFloat32(m.graph.initializer.find((t) => t.name === name)!);
}

test('clip-text: editing "red circle" to "blue circle" at the first self-attention output equals the PyTorch reference', { skip: !hasFixture('clip-text') && 'fixture not generated' }, async () => {
  const ref = expected('clip-text').edit;
  const file = fixture('clip-text');
  const before = sha(file);
  const out = path.join(tmpDir(), 'edited.onnx');
  const unrelated: string[] = ref.prompts.unrelated;
  const r = await edit(file, { layer: 'blocks.0.attn', source: ref.source, target: ref.target, lambda: ref.lambda, out, unrelated });
  assert.equal(sha(file), before, 'the original file is unchanged');
  assert.equal(r.weight, ref.weight);
  assert.deepEqual(r.templates, ref.templates);
  assert.equal(r.keys, ref.templates.length);

  // The update the engine wrote vs the reference deltaW ([out, in], as torch stores it; so does this export).
  const W0 = weightOf(file, ref.weight);
  const W1 = weightOf(out, ref.weight);
  const refDelta = flat(ref.deltaW);
  const got = Array.from(W1, (x, i) => x - W0[i]);
  const rel = relDiff(got, refDelta);
  // The math alone, from the reference's own keys.
  const math = await closedFormUpdate({ weight: W0, outFeatures: 64, inFeatures: 64, layout: 'out-in', keys: Float64Array.from(flat(ref.keys)), targetKeys: Float64Array.from(flat(ref.targetKeys)), lambda: ref.lambda, keepDelta: true });
  const relMath = relDiff(math.delta!, refDelta);
  console.log(`clip-text deltaW vs PyTorch: written file ${rel.toExponential(2)}, from the reference keys ${relMath.toExponential(2)} (max relative)`);
  // The engine's keys come from onnxruntime's float32 forward pass, not PyTorch's (~1e-7 apart),
  // and the 4 x 4 system amplifies that a little: the end-to-end bound is 1e-4.
  assert.ok(rel < 1e-4, `written deltaW differs by ${rel} relative`);
  assert.ok(relMath < 1e-5, `deltaW from the reference keys differs by ${relMath} relative`);

  // Edited prompts: closer to the target than to the source; the cosines are the reference's.
  const after = r.after as Extract<EditResult['after'], { closer: number }>;
  assert.equal(after.closer, ref.templates.length, JSON.stringify(after.prompts));
  after.prompts.forEach((p, i) => assert.ok(Math.abs(p.toTarget - ref.cosineEditedToTarget.after[i]) < 1e-3, `${p.prompt}: cos to target ${p.toTarget} vs ${ref.cosineEditedToTarget.after[i]}`));
  // Unrelated prompts move exactly as in the reference. Stated tolerance: cosine to the original
  // embedding >= 0.4. (This lambda = 0.01 edit of a 64-wide layer 0 is not local: PyTorch's own
  // edited model gives cosine 0.449 for "green square" and -0.477 for the target's own "an image
  // of blue circle", which is therefore left out of the bound.)
  const pres = r.preservation as Extract<EditResult['preservation'], { kind: 'encoder' }>;
  pres.prompts.forEach((p, i) => {
    const b = ref.textEmbedsBefore.unrelated[i] as number[];
    const a = ref.textEmbedsAfter.unrelated[i] as number[];
    const refCos = a.reduce((s, x, j) => s + x * b[j], 0) / Math.hypot(...a) / Math.hypot(...b);
    assert.ok(Math.abs(p.cosine - refCos) < 1e-3, `${p.prompt}: cosine ${p.cosine} vs reference ${refCos}`);
    if (!ref.prompts.targets.includes(p.prompt)) assert.ok(p.cosine >= 0.4, `${p.prompt} moved too far: cosine ${p.cosine}`);
  });
});

// Facts fixtures, edited at the layer `auto` localises (a causal trace of the MLP indirect effect
// at the source's last token, mean over the relation templates), with Diff-QuickFix's "last
// token and every later one" keys: on these 4-layer toy models the facts are read at the final
// position, so keys at the subject's last token alone move nothing. The localised layer and the
// rates achieved are recorded in test/unit/data/factEdits.json (see its description); the rates
// must not fall below them.
const FACT_EDITS = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../test/unit/data/factEdits.json'), 'utf8')) as Record<
  string,
  { source: string; target: string; preserveWeight: number; localizedLayer: number; transferred: number; templates: number; differingTransferred: number; differing: number; kept: number; checked: number }
>;

for (const name of ['gpt2', 'llama']) {
  test(`${name}: editing one subject to another at the localised layer (auto) transfers its facts and keeps >= 95% of the other subjects' facts`, { skip: !hasFixture(name) && 'fixture not generated' }, async () => {
    const facts = expected(name).facts as { subject: string; template: string; prompt: string; answer: { id: number } }[];
    const rec = FACT_EDITS[name];
    const { source, target, preserveWeight } = rec;
    const templates = [...new Set(facts.map((f) => f.template))];
    // Preservation keys (when used) come from half of the other subjects; the check uses the rest.
    const others = [...new Set(facts.map((f) => f.subject))].filter((s) => s !== source && s !== target);
    const held = new Set(preserveWeight ? others.filter((_, i) => i % 2 === 0) : []);
    const checked = facts.filter((f) => f.subject !== source && !held.has(f.subject));
    const file = fixture(name);
    const before = sha(file);
    const r = await edit(file, {
      layer: 'auto',
      source,
      target,
      templates,
      positions: 'last-and-after',
      unrelated: checked.map((f) => f.prompt),
      preserve: facts.filter((f) => held.has(f.subject)).map((f) => f.prompt),
      preserveWeight,
      out: path.join(tmpDir(), 'edited.onnx'),
    });
    assert.equal(sha(file), before, 'the original file is unchanged');
    assert.equal(r.localisation?.method, 'causal-trace');
    assert.equal(r.localisation?.layer, rec.localizedLayer, `auto localised block ${r.localisation?.layer} (indirect effects ${r.localisation?.scores?.map((x) => x.toFixed(4)).join(', ')})`);
    assert.equal(r.layer, `blocks.${rec.localizedLayer}.mlp`);
    const answerOf = (s: string, t: string): number => facts.find((f) => f.subject === s && f.template === t)!.answer.id;
    const after = r.after as Extract<EditResult['after'], { hits: number }>;
    const transferred = after.prompts.filter((p, i) => p.top[0].id === answerOf(target, templates[i])).length;
    const differing = templates.filter((t) => answerOf(source, t) !== answerOf(target, t));
    const transferredDiffering = after.prompts.filter((p, i) => differing.includes(templates[i]) && p.top[0].id === answerOf(target, templates[i])).length;
    const pres = r.preservation as Extract<EditResult['preservation'], { kind: 'language-model' }>;
    const kept = pres.prompts.filter((p, i) => p.after[0].id === checked[i].answer.id).length;
    const rate = transferred / templates.length;
    const keptRate = kept / checked.length;
    console.log(
      `${name}: ${source} -> ${target} at ${r.layer} (auto; indirect effects ${r.localisation?.scores?.map((x) => x.toFixed(4)).join(', ')}; ${r.keys} keys, preservation weight ${preserveWeight}): ${transferred}/${templates.length} prompts give ${target}'s answer (${transferredDiffering}/${differing.length} where the answers differ); other subjects' facts kept ${kept}/${checked.length} = ${(keptRate * 100).toFixed(1)}%; edit ${r.seconds.toFixed(3)} s`,
    );
    assert.equal(templates.length, rec.templates);
    assert.equal(differing.length, rec.differing);
    assert.equal(checked.length, rec.checked);
    assert.ok(rate >= 0.75 && transferred >= rec.transferred, `only ${transferred}/${templates.length} relations transferred (recorded ${rec.transferred})`);
    assert.ok(transferredDiffering > differing.length / 2 && transferredDiffering >= rec.differingTransferred, `only ${transferredDiffering}/${differing.length} differing relations transferred (recorded ${rec.differingTransferred})`);
    assert.ok(keptRate >= 0.95 && kept >= rec.kept, `only ${kept}/${checked.length} = ${(keptRate * 100).toFixed(1)}% of the other facts kept (recorded ${rec.kept})`);
  });
}

test('writes never touch the original: inline and external data, same and other folder; failing writes leave nothing', { skip: !hasFixture('gpt2-external') && 'fixture not generated' }, async () => {
  const src = path.dirname(fixture('gpt2-external'));
  const dir = tmpDir();
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  const file = path.join(dir, 'model.onnx');
  const data = path.join(dir, 'model.onnx.data');
  const hashes = [sha(file), sha(data)];
  const facts = expected('gpt2-external').facts as { template: string; subject: string }[] | undefined;
  const req = { layer: 'blocks.1.mlp', source: 'Zorvath', target: 'Keloph', templates: facts ? [...new Set(facts.map((f) => f.template))] : ['{} lives in the city of', 'The job of {} is'] };
  const m0 = OnnxModel.load(file);
  const wName = 'transformer.h.1.mlp.c_proj.weight';
  assert.ok(m0.externalRef(m0.graph.initializer.find((t) => t.name === wName)!), 'the fixture keeps this weight in external data');

  // Same folder: the edited tensor goes to edited.onnx.data, the rest is read from the original data file.
  const same = await edit(file, { ...req, out: path.join(dir, 'edited.onnx') });
  assert.deepEqual([sha(file), sha(data)], hashes);
  assert.deepEqual(same.files.map((f) => path.basename(f)).sort(), ['edited.onnx', 'edited.onnx.data']);
  // Another folder: the original data file is copied beside the new model.
  const other = tmpDir();
  const far = await edit(file, { ...req, out: path.join(other, 'far.onnx') });
  assert.deepEqual([sha(file), sha(data)], hashes);
  assert.equal(far.files.length, 3);
  const W0 = weightOf(file, wName);
  const W1 = weightOf(path.join(dir, 'edited.onnx'), wName);
  const W2 = weightOf(path.join(other, 'far.onnx'), wName);
  assert.ok(W1.some((x, i) => x !== W0[i]), 'the weight changed');
  assert.deepEqual(W2, W1);
  // Every other tensor reads the same bytes as the original's.
  const m1 = OnnxModel.load(path.join(other, 'far.onnx'));
  for (const t of m0.graph.initializer) {
    if (t.name === wName) continue;
    const t1 = m1.graph.initializer.find((x) => x.name === t.name)!;
    assert.deepEqual(Buffer.from(m1.tensorBytes(t1)), Buffer.from(m0.tensorBytes(t)), t.name);
  }

  // Refusals and failures.
  await assert.rejects(edit(file, { ...req, out: file }), /refusing to overwrite/);
  await assert.rejects(edit(file, { ...req, out: data }), /refusing to write over/);
  const listing = fs.readdirSync(dir).sort();
  await assert.rejects(edit(file, { ...req, out: path.join(dir, 'no-such-folder', 'x.onnx') }), /cannot (write|copy)/);
  const blocker = path.join(dir, 'a-file');
  fs.writeFileSync(blocker, 'x');
  await assert.rejects(edit(file, { ...req, out: path.join(blocker, 'x.onnx') }), /cannot (write|copy)/);
  fs.rmSync(blocker);
  assert.deepEqual(fs.readdirSync(dir).sort(), listing, 'no partial or temporary file is left');
  assert.deepEqual([sha(file), sha(data)], hashes);

  // Inline weights (gpt2): a failing write leaves nothing either.
  const inline = fixture('gpt2');
  const h = sha(inline);
  await assert.rejects(edit(inline, { ...req, out: path.join(dir, 'nope', 'x.onnx') }), /cannot write/);
  assert.equal(sha(inline), h);
  assert.deepEqual(fs.readdirSync(path.dirname(inline)).filter((f) => f.endsWith('.tmp')), []);
});

// ---------------------------------------------------------------------------------------------
// Encoder-decoder (LocoEdit): cross-attention K/V edits.

/** The encdec fixture's encoder prompts: "the {size} {object} is {colour}" (see test/fixtures/README.md). */
const SIZES = ['big', 'small', 'tiny', 'huge'];
const OBJECTS = ['ball', 'box', 'cup', 'hat', 'car'];
const ENCDEC_TEMPLATES = SIZES.flatMap((s) => OBJECTS.map((o) => `the ${s} ${o} is {}`));
const ENCDEC_UNRELATED = ['green', 'yellow', 'pink', 'blue'].flatMap((c) => SIZES.map((s, i) => `the ${s} ${OBJECTS[(i + c.length) % OBJECTS.length]} is ${c}`));

const LAYOUTS = [
  { name: 'one graph (model.onnx)', file: 'model.onnx', encoder: undefined },
  { name: 'decoder.onnx + encoder.onnx', file: 'decoder.onnx', encoder: 'encoder.onnx' },
] as const;

for (const layout of LAYOUTS) {
  test(`encdec, ${layout.name}: editing "red" to "blue" at the K/V projections of cross-attention layers 2-3 (keys from 4 templates) makes the decoder answer " blue" for them and the 16 held-out "... is red" prompts; unrelated prompts keep their answers; the zeroed layers 0-1 change nothing`, { skip: !hasFixture('encdec') && 'fixture not generated' }, async () => {
    const ref = expected('encdec').localization;
    const file = fixture('encdec', layout.file);
    const encoder = layout.encoder && fixture('encdec', layout.encoder);
    const hashes = [file, encoder].filter((f): f is string => !!f).map(sha);
    const dir = tmpDir();
    // Keys from 4 templates; the other 16 "... is red" prompts are watched with the unrelated ones (they should change: generalisation).
    const templates = ENCDEC_TEMPLATES.slice(0, 4);
    const heldOut = ENCDEC_TEMPLATES.slice(4).map((t) => t.replace('{}', 'red'));
    const req = { source: 'red', target: 'blue', templates, unrelated: [...ENCDEC_UNRELATED, ...heldOut], decoderPrompt: ref.decoderPrompt as string, out: path.join(dir, 'edited.onnx') };
    const r = await edit(file, { ...req, layer: 'blocks.2.cross_attn.kv,blocks.3.cross_attn.kv' }, encoder, fixture('encdec'));
    assert.deepEqual([file, encoder].filter((f): f is string => !!f).map(sha), hashes, 'the original files are unchanged');
    assert.equal(r.kind, 'encoder-decoder');
    assert.deepEqual(r.layers, ['blocks.2.cross_attn.k', 'blocks.2.cross_attn.v', 'blocks.3.cross_attn.k', 'blocks.3.cross_attn.v']);
    assert.deepEqual(r.weights, [2, 3].flatMap((l) => ['k', 'v'].map((p) => `model.decoder.layers.${l}.encoder_attn.${p}_proj.weight`)));
    assert.equal(r.keys, templates.length, 'one key per template: the encoder output at the colour token');
    assert.deepEqual(r.decoder?.ids, ref.decoderInputIds);
    // Only the four weights changed; every other tensor has the original's bytes.
    const m0 = OnnxModel.load(file);
    const m1 = OnnxModel.load(r.out);
    for (const t of m0.graph.initializer) {
      const t1 = m1.graph.initializer.find((x) => x.name === t.name)!;
      const same = Buffer.from(m1.tensorBytes(t1)).equals(Buffer.from(m0.tensorBytes(t)));
      assert.equal(same, !r.weights.includes(t.name), `${t.name} ${same ? 'unchanged' : 'changed'}`);
    }
    const before = r.before as Extract<EditResult['before'], { hits: number }>;
    const after = r.after as Extract<EditResult['after'], { hits: number }>;
    const pres = r.preservation as Extract<EditResult['preservation'], { kind: 'language-model' }>;
    const pBlue = after.prompts.map((p) => p.pExpected);
    const unrelated = pres.prompts.filter((p) => !heldOut.includes(p.prompt));
    const general = pres.prompts.filter((p) => heldOut.includes(p.prompt));
    const generalised = general.filter((p) => p.after[0].id === ref.target.answer.id && p.before[0].id === ref.original.answer.id).length;
    const kept = unrelated.filter((p) => p.kept).length;
    console.log(
      `encdec ${layout.name}: ${r.keys} keys x ${r.weights.length} weights in ${r.seconds.toFixed(3)} s; " blue" is the answer for ${before.hits} -> ${after.hits} of ${after.prompts.length} edited "... is red" prompts (p(blue) ${Math.min(...pBlue).toFixed(3)}-${Math.max(...pBlue).toFixed(3)}) and for ${generalised}/${general.length} held-out ones; unrelated keep their answer ${kept}/${unrelated.length}`,
    );
    for (const p of before.prompts) assert.equal(p.top[0].text, ref.original.answer.text, `before: ${p.prompt}`);
    for (const p of after.prompts) {
      assert.equal(p.expected.id, ref.target.answer.id, `the target's answer for ${p.prompt}`);
      assert.equal(p.top[0].id, ref.target.answer.id, `after: ${p.prompt} -> ${p.top[0].text}`);
    }
    assert.ok(kept / unrelated.length >= 0.95, `only ${kept}/${unrelated.length} unrelated prompts keep their answer`);
    assert.ok(generalised >= 0.75 * general.length, `the edit reaches only ${generalised}/${general.length} held-out "... is red" prompts`);

    // The routing is the fixture's: layers 0 and 1 (cross-attention output zeroed) carry nothing.
    const control = await edit(file, { ...req, layer: 'blocks.0.cross_attn.kv,blocks.1.cross_attn.kv', out: path.join(dir, 'control.onnx') }, encoder, fixture('encdec'));
    assert.equal((control.after as typeof after).hits, 0, 'editing the zeroed layers moved answers');
    assert.ok(control.norms.delta > 0, 'the control edit did change its weights');
  });
}

test('encdec: both layouts give the same update and the same answers; auto localises the window (LocoGen) holding layers 2-3 and edits its K/V', { skip: !hasFixture('encdec') && 'fixture not generated' }, async () => {
  const dir = tmpDir();
  const req = { source: 'red', target: 'blue', templates: ENCDEC_TEMPLATES.slice(0, 8), unrelated: ENCDEC_UNRELATED, decoderPrompt: 'colour:', layer: 'auto' };
  const one = await edit(fixture('encdec'), { ...req, out: path.join(dir, 'one.onnx') });
  const two = await edit(fixture('encdec', 'decoder.onnx'), { ...req, out: path.join(dir, 'two.onnx') }, fixture('encdec', 'encoder.onnx'), fixture('encdec'));
  for (const r of [one, two]) {
    assert.equal(r.localisation?.method, 'cross-attention');
    assert.ok(r.localisation?.layers?.includes('blocks.2.cross_attn') && r.localisation.layers.includes('blocks.3.cross_attn'), `window ${r.localisation?.layers?.join(', ')}`);
    assert.equal(r.layers.length, 2 * 3, 'K and V of a window of 3 (the default)');
    assert.equal((r.after as Extract<EditResult['after'], { hits: number }>).hits, req.templates.length);
  }
  assert.deepEqual(two.layers, one.layers);
  // The conditioning does not depend on any decoder weight: editing the window at once is editing it layer by layer.
  assert.ok(!one.notes.some((n) => /upstream/.test(n)), one.notes.join('; '));
  assert.deepEqual(two.localisation?.scores?.map((s) => s.toFixed(5)), one.localisation?.scores?.map((s) => s.toFixed(5)));
  for (const w of one.weights) {
    const a0 = weightOf(fixture('encdec'), w);
    const b0 = weightOf(fixture('encdec', 'decoder.onnx'), w);
    const a = weightOf(path.join(dir, 'one.onnx'), w).map((x, i) => x - a0[i]);
    const b = weightOf(path.join(dir, 'two.onnx'), w).map((x, i) => x - b0[i]);
    const rel = relDiff(a, b);
    assert.ok(rel < 1e-4, `${w}: the layouts' updates differ by ${rel} relative`);
  }
  const pa = (one.after as Extract<EditResult['after'], { hits: number }>).prompts.map((p) => p.pExpected);
  const pb = (two.after as Extract<EditResult['after'], { hits: number }>).prompts.map((p) => p.pExpected);
  pa.forEach((p, i) => assert.ok(Math.abs(p - pb[i]) < 1e-4, `p(blue) ${p} vs ${pb[i]}`));
});

test('encdec: refusals name what is missing (the encoder file, a decoder-stream layer, templates)', { skip: !hasFixture('encdec') && 'fixture not generated' }, async () => {
  const dir = tmpDir();
  const req = { source: 'red', target: 'blue', templates: ['the big ball is {}'], decoderPrompt: 'colour:', out: path.join(dir, 'x.onnx') };
  await assert.rejects(edit(fixture('encdec', 'decoder.onnx'), { ...req, layer: 'blocks.2.cross_attn.v' }, undefined, fixture('encdec')), /--encoder/);
  await assert.rejects(edit(fixture('encdec'), { ...req, layer: 'blocks.2.cross_attn.v' }, fixture('encdec', 'encoder.onnx')), /not needed/);
  await assert.rejects(edit(fixture('encdec'), { ...req, layer: 'blocks.3.mlp' }), /reads the decoder's own tokens/);
  await assert.rejects(edit(fixture('encdec'), { ...req, layer: 'blocks.2.cross_attn.v,blocks.2.cross_attn.v' }), /same weight/);
  await assert.rejects(edit(fixture('encdec'), { ...req, templates: undefined, layer: 'blocks.2.cross_attn.v' }), /encoder-decoder needs prompt templates/);
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing written');
});

test('gpt2: two MLPs in one edit are each solved from the original keys, and the result says the later keys lie downstream of the earlier edit', { skip: !hasFixture('gpt2') && 'fixture not generated' }, async () => {
  const facts = expected('gpt2').facts as { template: string }[];
  const dir = tmpDir();
  const templates = [...new Set(facts.map((f) => f.template))].slice(0, 2);
  const r = await edit(fixture('gpt2'), { layer: 'blocks.0.mlp, blocks.2.mlp', source: 'Maroph', target: 'Tavane', templates, out: path.join(dir, 'two.onnx') });
  assert.deepEqual(r.layers, ['blocks.0.mlp', 'blocks.2.mlp']);
  assert.equal(r.edits.length, 2);
  assert.ok(r.edits.every((e) => e.norms.delta > 0));
  assert.ok(r.notes.some((n) => /keys of blocks\.2\.mlp .*blocks\.0\.mlp.*upstream/.test(n)), r.notes.join('; '));
  // Each weight is exactly the single-layer edit's.
  const one = await edit(fixture('gpt2'), { layer: 'blocks.2.mlp', source: 'Maroph', target: 'Tavane', templates, out: path.join(dir, 'one.onnx') });
  assert.deepEqual(weightOf(path.join(dir, 'two.onnx'), one.weights[0]), weightOf(path.join(dir, 'one.onnx'), one.weights[0]));
});
