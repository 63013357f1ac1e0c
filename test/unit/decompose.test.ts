import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { encodePng } from '../../src/runtime/image/decode';
import { imageBatch, modelPreprocessing } from '../../src/runtime/image/load';
import type { RgbImage } from '../../src/runtime/image/resample';
import { Decomposer, alignVectors, dot, featureScores, fitAlignment, gramSchmidt, meanVector, retrieve, tokenHeatmap, topDescriptions, unit } from '../../src/runtime/methods/decompose';
import type { Decomposition } from '../../src/runtime/methods/decompose';
import { embedTexts } from '../../src/runtime/methods/textEmbed';
import { Random } from '../../src/runtime/random';
import { TextTokenizer } from '../../src/runtime/tokenizer';
import { expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';

const COLOURS: Record<string, [number, number, number]> = { red: [215, 40, 40], green: [40, 165, 60], blue: [45, 80, 215], yellow: [225, 205, 40] };
const SHAPES = ['circle', 'square', 'triangle'];

/** A coloured shape on a noisy grey background (as tools/make_fixtures.py's render, with our own RNG). */
function render(rng: Random, colour: string, shape: string, size = 32): RgbImage {
  const u = (a: number, b: number): number => a + (b - a) * rng.next();
  const int = (a: number, b: number): number => Math.floor(u(a, b));
  const g = int(70, 190);
  const bg = [0, 1, 2].map(() => g + int(-15, 16));
  const r = u(10, 12);
  const cx = size / 2 + u(-1.5, 1.5);
  const cy = size / 2 + u(-1.5, 1.5);
  const col = COLOURS[colour].map((c) => c + int(-20, 21));
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const xx = x + 0.5;
      const yy = y + 0.5;
      let inside: boolean;
      if (shape === 'circle') inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r;
      else if (shape === 'square') inside = Math.abs(xx - cx) <= 0.85 * r && Math.abs(yy - cy) <= 0.85 * r;
      else {
        const t = (yy - (cy - r)) / (1.8 * r);
        inside = t >= 0 && t <= 1 && Math.abs(xx - cx) <= t * r;
      }
      for (let c = 0; c < 3; c++) {
        const v = inside ? col[c] + 4 * rng.gaussian() : bg[c] + 6 * rng.gaussian();
        data[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return { width: size, height: size, channels: 3, data };
}

/** `perClass` images of each colour x shape, as PNG files in a temporary folder; labels are colour names. */
async function syntheticFolder(perClass: number, seed: number): Promise<{ dir: string; files: string[]; colours: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-decompose-'));
  const rng = new Random(seed);
  const files: string[] = [];
  const colours: string[] = [];
  let i = 0;
  for (let k = 0; k < perClass; k++) {
    for (const c of Object.keys(COLOURS)) {
      for (const s of SHAPES) {
        const f = path.join(dir, `${String(i++).padStart(3, '0')}_${c}_${s}.png`);
        fs.writeFileSync(f, await encodePng(render(rng, c, s)));
        files.push(f);
        colours.push(c);
      }
    }
  }
  return { dir, files, colours };
}

function open(name: string): HookedModel {
  const { model, graph, arch } = openModel(fixture(name));
  return new HookedModel(model, graph, arch);
}

async function decomposeFiles(hooked: HookedModel, name: string, files: string[], perToken = false): Promise<Decomposition[]> {
  const pixels = await imageBatch(files, modelPreprocessing(fixture(name)));
  return new Decomposer(hooked).decompose(pixels, { perToken });
}

const fixtureImages = (name: string): string[] => {
  const exp = expected(name);
  return exp.runs[0].images.map((f: string) => path.join(path.dirname(fixture(name)), f));
};

test('clip-vision: the decomposition equals the PyTorch reference per component and sums to image_embeds', { skip: !hasFixture('clip-vision') && 'fixture not generated' }, async (t) => {
  const hooked = open('clip-vision');
  t.after(() => hooked.dispose());
  const exp = expected('clip-vision');
  const ds = await decomposeFiles(hooked, 'clip-vision', fixtureImages('clip-vision'));
  const ref = exp.decomposition;
  const d = ds[ref.inputRow];
  assert.deepEqual(
    d.components.map((c) => c.name),
    ref.components.map((c: { name: string }) => c.name),
  );
  let maxVec = 0;
  let maxRes = 0;
  ref.components.forEach((rc: { name: string; vector: number[]; residual: number[] }, i: number) => {
    maxVec = Math.max(maxVec, maxAbsDiff(d.components[i].vector, rc.vector));
    maxRes = Math.max(maxRes, maxAbsDiff(d.components[i].residual, rc.residual));
  });
  assert.ok(maxVec < 1e-4, `component vectors differ from the reference by ${maxVec}`);
  assert.ok(maxRes < 1e-4, `component residuals differ from the reference by ${maxRes}`);
  assert.ok(Math.abs(d.std - ref.std) < 1e-4 * ref.std, `std ${d.std} vs ${ref.std}`);
  const embeds = flat(exp.runs[0].outputs.image_embeds.data);
  const P = d.total.length;
  ds.forEach((x, b) => {
    assert.ok(x.reconstructionError < 1e-4, `image ${b}: relative reconstruction error ${x.reconstructionError}`);
    assert.ok(x.residualError < 1e-4, `image ${b}: residual error ${x.residualError}`);
    assert.ok(maxAbsDiff(x.output, embeds.slice(b * P, (b + 1) * P)) < 1e-4, `image ${b}: output is image_embeds`);
  });
  console.log(`clip-vision: max |vector - ref| ${maxVec.toExponential(2)}, max |residual - ref| ${maxRes.toExponential(2)}, max reconstruction error ${Math.max(...ds.map((x) => x.reconstructionError)).toExponential(2)}`);
});

test('vit: the decomposition of the pre-logits sums to the model (and through the classifier to its logits)', { skip: !hasFixture('vit') && 'fixture not generated' }, async (t) => {
  const hooked = open('vit');
  t.after(() => hooked.dispose());
  const exp = expected('vit');
  const ds = await decomposeFiles(hooked, 'vit', fixtureImages('vit'));
  const { graph, model } = hooked;
  const W = model.tensorFloat32(graph.initializers.get('classifier.weight')!); // [labels, d]
  const bias = model.tensorFloat32(graph.initializers.get('classifier.bias')!);
  const logits = flat(exp.runs[0].outputs.logits.data);
  const K = bias.length;
  ds.forEach((d, b) => {
    assert.equal(d.components.length, 1 + exp.config.layers * (exp.config.heads + 2));
    assert.ok(d.reconstructionError < 1e-4, `image ${b}: relative reconstruction error ${d.reconstructionError}`);
    const D = d.total.length;
    const got = Array.from({ length: K }, (_, k) => bias[k] + dot(W.subarray(k * D, (k + 1) * D), d.total));
    const diff = maxAbsDiff(got, logits.slice(b * K, (b + 1) * K));
    assert.ok(diff < 1e-4, `image ${b}: classifier(sum of components) differs from the logits by ${diff}`);
  });
  console.log(`vit: max reconstruction error ${Math.max(...ds.map((x) => x.reconstructionError)).toExponential(2)}`);
});

for (const name of ['clip-vision', 'vit']) {
  test(`${name}: per-token parts of each head sum to the head, and form a patch heat map`, { skip: !hasFixture(name) && 'fixture not generated' }, async (t) => {
    const hooked = open(name);
    t.after(() => hooked.dispose());
    const [d] = await decomposeFiles(hooked, name, fixtureImages(name).slice(0, 1), true);
    assert.ok(d.reconstructionError < 1e-4);
    for (const c of d.components.filter((x) => x.kind === 'head')) {
      assert.equal(c.tokens!.length, d.tokens);
      const sum = new Float64Array(c.vector.length);
      for (const v of c.tokens!) v.forEach((x, o) => (sum[o] += x));
      assert.ok(maxAbsDiff(sum, c.vector) < 1e-6, `${c.name}: tokens sum to the head`);
    }
    assert.deepEqual(d.grid, [4, 4]);
    const hm = tokenHeatmap(d, ['blocks.1.attn.head.0', 'blocks.1.attn.head.1']);
    assert.equal(hm.grid.length, 4);
    assert.ok(hm.grid.flat().every((v) => Number.isFinite(v) && v >= 0));
  });
}

test('clip: a colour feature ranks components that separate colours (top-3 by score classify colour well above chance)', { skip: !(hasFixture('clip-vision') && hasFixture('clip-text')) && 'fixture not generated' }, async (t) => {
  const vision = open('clip-vision');
  const text = open('clip-text');
  t.after(async () => {
    await vision.dispose();
    await text.dispose();
  });
  const { dir, files, colours } = await syntheticFolder(4, 7); // 48 images
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tok = TextTokenizer.load(fixture('clip-text'));
  const names = Object.keys(COLOURS);
  const embeds = await embedTexts(text, tok, names);
  const ds = await decomposeFiles(vision, 'clip-vision', files);
  for (const d of ds) assert.ok(d.reconstructionError < 1e-4);
  const compNames = ds[0].components.map((c) => c.name);
  const scores = featureScores(
    compNames,
    ds.map((d) => d.components.map((c) => c.vector)),
    ds.map((d) => d.total),
    gramSchmidt(embeds),
  );
  // Measure: sum the top-3 components' vectors per image and classify its colour by the highest
  // cosine with the four colour embeddings; chance is 1/4.
  const accuracy = (chosen: string[], centred = false): number => {
    const units = embeds.map(unit);
    const sums = ds.map((d) => {
      const v = new Float64Array(d.total.length);
      for (const c of d.components) if (chosen.includes(c.name)) c.vector.forEach((x, o) => (v[o] += x));
      return v;
    });
    const m = meanVector(sums);
    let right = 0;
    ds.forEach((_, i) => {
      const v = centred ? sums[i].map((x, o) => x - m[o]) : sums[i];
      const sims = units.map((u) => dot(u, v));
      if (names[sims.indexOf(Math.max(...sims))] === colours[i]) right++;
    });
    return right / ds.length;
  };
  const top = scores.slice(0, 3).map((s) => s.name);
  const bottom = scores.slice(-3).map((s) => s.name);
  const accTop = accuracy(top);
  const accBottom = accuracy(bottom);
  const accTopC = accuracy(top, true);
  const accBottomC = accuracy(bottom, true);
  console.log(`colour scores: ${scores.map((s) => `${s.name} ${s.score.toFixed(3)}`).join(', ')}; top-3 accuracy ${accTop.toFixed(3)}, bottom-3 ${accBottom.toFixed(3)}; centred: top-3 ${accTopC.toFixed(3)}, bottom-3 ${accBottomC.toFixed(3)}`);
  assert.ok(accTop >= 0.6, `top-3 colour components classify colour with accuracy ${accTop} (chance 0.25)`);
  assert.ok(scores[0].score > 0.5, `top colour score ${scores[0].score}`);
  assert.ok(accTop > accBottom, `top-3 (${accTop}) beat bottom-3 (${accBottom})`);

  // Applications: descriptions for the top component on red images, retrieval by "red".
  const topVectors = ds.map((d) => d.components.find((c) => c.name === top[0])!.vector);
  const reds = topVectors.filter((_, i) => colours[i] === 'red');
  const desc = topDescriptions(reds, names, embeds, meanVector(topVectors));
  assert.equal(desc[0].text, 'red', JSON.stringify(desc));
  const ranked = retrieve(files, topVectors, embeds[0]);
  const hits = ranked.slice(0, 12).filter((r) => /_red_/.test(r.image)).length;
  assert.ok(hits >= 6, `retrieval of "red" by the top component: ${hits} of the top 12 are red (chance 3)`);
});

test('vit: ridge alignment maps the components into the CLIP space and colour scores work there', { skip: !(hasFixture('vit') && hasFixture('clip-vision') && hasFixture('clip-text')) && 'fixture not generated' }, async (t) => {
  const vit = open('vit');
  const clip = open('clip-vision');
  const text = open('clip-text');
  t.after(async () => {
    await vit.dispose();
    await clip.dispose();
    await text.dispose();
  });
  const train = await syntheticFolder(4, 11);
  const held = await syntheticFolder(2, 12);
  t.after(() => {
    fs.rmSync(train.dir, { recursive: true, force: true });
    fs.rmSync(held.dir, { recursive: true, force: true });
  });
  const fit = await decomposeFiles(vit, 'vit', train.files);
  const targets = (await decomposeFiles(clip, 'clip-vision', train.files)).map((d) => d.output);
  const al = fitAlignment(
    fit.map((d) => d.components.map((c) => c.vector)),
    targets,
    1,
  );
  assert.ok(al.r2 > 0.9, `fit R^2 ${al.r2}`);
  const test2 = await decomposeFiles(vit, 'vit', held.files);
  const heldTargets = (await decomposeFiles(clip, 'clip-vision', held.files)).map((d) => d.output);
  const aligned = test2.map((d) => alignVectors(al, d.components.map((c) => c.vector)));
  let ssRes = 0;
  let ssTot = 0;
  const mean = new Float64Array(al.p);
  for (const y of heldTargets) y.forEach((v, o) => (mean[o] += v / heldTargets.length));
  aligned.forEach((vs, i) => {
    const y = new Float64Array(al.p);
    for (const v of vs) v.forEach((x, o) => (y[o] += x));
    y.forEach((v, o) => {
      ssRes += (v - heldTargets[i][o]) ** 2;
      ssTot += (heldTargets[i][o] - mean[o]) ** 2;
    });
  });
  const heldR2 = 1 - ssRes / ssTot;
  const tok = TextTokenizer.load(fixture('clip-text'));
  const names = Object.keys(COLOURS);
  const embeds = await embedTexts(text, tok, names);
  const scores = featureScores(
    test2[0].components.map((c) => c.name),
    aligned,
    aligned.map((vs) => vs.reduce((s, v) => s.map((x, o) => x + v[o]), new Float64Array(al.p))),
    gramSchmidt(embeds),
  );
  console.log(`vit alignment: fit R^2 ${al.r2.toFixed(3)}, held-out R^2 ${heldR2.toFixed(3)}; colour scores ${scores.slice(0, 4).map((s) => `${s.name} ${s.score.toFixed(3)}`).join(', ')}`);
  assert.ok(heldR2 > 0.5, `held-out R^2 ${heldR2}`);
  assert.ok(scores[0].score > 0.5, `top colour score ${scores[0].score}`);
});

// tsc compiles src/cli.ts to out/src/cli.js: the same code as `npx mechanist`.
const CLI = path.resolve(__dirname, '../../src/cli.js');

function mechanist(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TMPDIR: os.tmpdir() } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('decompose --json: the CLI contract (components, total, output, reconstructionError, scores)', { skip: !(hasFixture('clip-vision') && hasFixture('clip-text')) && 'fixture not generated' }, () => {
  const images = path.join(path.dirname(fixture('clip-vision')), 'images');
  const image = path.join(images, 'red_circle.png');
  const plain = mechanist('decompose', fixture('clip-vision'), '--image', image, '--json', '--quiet');
  assert.equal(plain.code, 0, plain.stderr);
  const p = JSON.parse(plain.stdout);
  const ref = expected('clip-vision').decomposition;
  assert.deepEqual(
    p.components.map((c: { name: string }) => c.name),
    ref.components.map((c: { name: string }) => c.name),
  );
  for (const c of p.components) {
    for (const k of ['name', 'kind', 'layer', 'head', 'norm']) assert.ok(k in c, k);
    assert.ok(!('vector' in c));
  }
  assert.equal(p.components[1].kind, 'head');
  assert.equal(p.components[1].layer, 0);
  assert.equal(p.components[1].head, 0);
  assert.ok(p.reconstructionError < 1e-4);
  assert.equal(p.total.length, 32);
  assert.ok(maxAbsDiff(p.total, p.output) < 1e-4);
  assert.ok(!('scores' in p));

  const full = mechanist('decompose', fixture('clip-vision'), '--image', image, '--text-model', fixture('clip-text'), '--tokenizer', fixture('clip-text', 'tokenizer.json'), '--feature', 'colour', '--descriptions', 'red,green,blue,yellow', '--images', images, '--per-token', '--vectors', '--json', '--quiet');
  assert.equal(full.code, 0, full.stderr);
  const f = JSON.parse(full.stdout);
  assert.equal(f.scores.length, f.components.length);
  for (const s of f.scores) assert.ok(typeof s.name === 'string' && Number.isFinite(s.score));
  const refVec = ref.components.map((c: { vector: number[] }) => c.vector);
  f.components.forEach((c: { vector: number[] }, i: number) => assert.ok(maxAbsDiff(c.vector, refVec[i]) < 1e-4, `component ${i}`));
  const head = f.components.find((c: { kind: string }) => c.kind === 'head');
  assert.equal(head.tokens.length, 17);

  const bad = mechanist('decompose', fixture('clip-vision'), '--image', path.join(images, 'absent.png'), '--json', '--quiet');
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
});
