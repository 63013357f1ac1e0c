// In-host tests of the concept edit: through the extension's API on the clip-text fixture
// ("red circle" -> "blue circle" at blocks.0.attn, written to a temporary folder), the result
// must equal the CLI's for the same inputs (`mechanist edit ... --json`) in its key numbers, the
// original file's bytes are unchanged, the run is stored and shown in a panel, the edited model
// opens like any model, "Save as" moves it, and "Discard" deletes it (and never the original).
// On an encoder-decoder exported apart, the API edits the cross-attention K/V of the decoder
// with the encoder file feeding the conditioning, and refuses without it.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { until } from './until';
import { activatedApi, cli, fixtureDir } from './fixtures';

const TOL = 1e-4;

interface EncoderReport {
  prompts: { prompt: string; toSource: number; toTarget: number; closerToTarget: boolean }[];
  closer: number;
  meanToTarget: number;
}

interface EditResult {
  weight: string;
  layer: string;
  keys: number;
  kind: string;
  templates: string[];
  lambda: number;
  out: string;
  files: string[];
  weightShape: number[];
  norms: { weight: number; delta: number };
  before: EncoderReport;
  after: EncoderReport;
  preservation: { kind: string; prompts: { prompt: string; cosine: number; shift: number }[]; minCosine: number };
}

interface EditRun {
  id: string;
  modelPath: string;
  result: EditResult;
}

interface FileState {
  out: string;
  files: string[];
  exists: boolean;
  discarded?: boolean;
}

/** The parts of the extension's API these tests use (see MechanistApi). */
interface Api {
  edit(modelPath: string, inputs: { layer: string; source: string; target: string; out: string; templates?: string[]; lambda?: number; decoderPrompt?: string; encoder?: string }): Promise<EditRun | undefined>;
  editPanels(): { runId: string; loaded: boolean }[];
  editFile(runId: string): FileState | undefined;
  editOpen(runId: string): Promise<boolean>;
  editDiscard(runId: string): Promise<boolean>;
  editSaveAs(runId: string, to: string): Promise<string | undefined>;
  models(): { path: string; family: string; layers: number }[];
  runs(): { id: string; kind: string; modelPath: string }[];
  engine: { request(method: string, params: unknown): Promise<unknown> };
}

function close(a: unknown, b: unknown, what: string): void {
  if (typeof a === 'number' || typeof b === 'number') {
    assert.ok(typeof a === 'number' && typeof b === 'number' && Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b)), `${what}: ${String(a)} vs ${String(b)}`);
    return;
  }
  assert.ok(Array.isArray(a) && Array.isArray(b), `${what}: not arrays`);
  assert.equal(a.length, b.length, `${what}: length`);
  a.forEach((x, i) => close(x, b[i], `${what}[${i}]`));
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

const api = (): Promise<Api> => activatedApi<Api>('edit');

describe('Concept edit', function () {
  this.timeout(120_000);
  const model = () => path.join(fixtureDir('clip-text'), 'model.onnx');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-edit-'));
  const INPUTS = { layer: 'blocks.0.attn', source: 'red circle', target: 'blue circle' };
  let run: EditRun | undefined;
  let originalHash = '';

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('edits clip-text: the CLI’s numbers, a new file, the original’s bytes unchanged, the run stored and shown', async () => {
    const mech = await api();
    originalHash = sha256(model());
    const out = path.join(tmp, 'clip.edited-red-to-blue.onnx');
    const got = await mech.edit(model(), { ...INPUTS, out });
    assert.ok(got, 'edit() returned nothing (see the error notification)');
    run = got;
    const r = got.result;
    assert.equal(r.out, out);
    assert.ok(fs.existsSync(out), 'the edited model was not written');
    assert.equal(sha256(model()), originalHash, 'the original model’s bytes changed');

    const ref = cli<EditResult>('edit', model(), '--layer', INPUTS.layer, '--source', INPUTS.source, '--target', INPUTS.target, '--out', path.join(tmp, 'cli.onnx'));
    assert.equal(r.weight, ref.weight);
    assert.equal(r.layer, ref.layer);
    assert.equal(r.kind, 'encoder');
    assert.equal(r.keys, ref.keys);
    assert.deepEqual(r.templates, ref.templates);
    assert.deepEqual(r.weightShape, ref.weightShape);
    close(r.norms.weight, ref.norms.weight, 'norm of W');
    close(r.norms.delta, ref.norms.delta, 'norm of the change');
    for (const k of ['before', 'after'] as const) {
      close(r[k].prompts.map((p) => p.toSource), ref[k].prompts.map((p) => p.toSource), `${k} cosines to the source`);
      close(r[k].prompts.map((p) => p.toTarget), ref[k].prompts.map((p) => p.toTarget), `${k} cosines to the target`);
      assert.equal(r[k].closer, ref[k].closer, `${k}: prompts closer to the target`);
    }
    assert.equal(r.after.closer, r.after.prompts.length, 'every edited prompt is closer to the target after the edit');
    close(r.preservation.prompts.map((p) => p.cosine), ref.preservation.prompts.map((p) => p.cosine), 'preservation cosines');
    assert.equal(sha256(out), sha256(path.join(tmp, 'cli.onnx')), 'the extension and the CLI wrote different files');

    assert.ok(mech.runs().some((x) => x.id === got.id && x.kind === 'edit' && x.modelPath === model()), 'the run is not stored');
    await until('the edit panel to load', () => mech.editPanels(), (ps) => ps.some((p) => p.runId === got.id && p.loaded));
    assert.deepEqual(mech.editFile(got.id), { out, files: [out], exists: true });
  });

  it('refuses to write over the original', async () => {
    const mech = await api();
    const r = await mech.edit(model(), { ...INPUTS, out: model() });
    assert.equal(r, undefined);
    assert.equal(sha256(model()), originalHash, 'the original model’s bytes changed');
  });

  it('the edited model opens like any model; Save as moves it', async () => {
    const mech = await api();
    assert.ok(run, 'needs the first test’s run');
    assert.equal(await mech.editOpen(run.id), true);
    const opened = mech.models().find((m) => m.path === run!.result.out);
    assert.ok(opened, `models() does not list ${run.result.out}`);
    const original = mech.models().find((m) => m.path === model());
    assert.equal(opened.family, original?.family);
    assert.equal(opened.layers, original?.layers);

    const moved = path.join(tmp, 'moved.onnx');
    assert.equal(await mech.editSaveAs(run.id, moved), moved);
    assert.ok(fs.existsSync(moved), 'the moved model is missing');
    assert.ok(!fs.existsSync(run.result.out), 'the old file is still there');
    assert.ok(mech.models().some((m) => m.path === moved), 'the moved model was not reopened');
    assert.ok(!mech.models().some((m) => m.path === run!.result.out), 'the old path is still open');
    assert.equal(mech.editFile(run.id)?.out, moved);
    assert.equal(sha256(model()), originalHash, 'the original model’s bytes changed');
  });

  it('Discard deletes the edited file (never the original)', async () => {
    const mech = await api();
    assert.ok(run, 'needs the first test’s run');
    const st = mech.editFile(run.id)!;
    assert.equal(await mech.editDiscard(run.id), true);
    for (const f of st.files) assert.ok(!fs.existsSync(f), `${f} still exists`);
    assert.ok(!fs.existsSync(st.out));
    assert.deepEqual({ ...mech.editFile(run.id), files: undefined }, { out: st.out, files: undefined, exists: false, discarded: true });
    assert.ok(!mech.models().some((m) => m.path === st.out), 'the discarded model is still open');
    assert.ok(fs.existsSync(model()), 'the original is gone');
    assert.equal(sha256(model()), originalHash, 'the original model’s bytes changed');
  });

  it('an encoder-decoder exported apart (decoder.onnx + encoder.onnx): the site is the cross-attention K/V with the conditioning input named; edit() with the encoder edits both into one file, " blue" for " red"; without the encoder it is refused', async () => {
    const mech = await api();
    const dir = fixtureDir('encdec', 'decoder.onnx');
    const decoder = path.join(dir, 'decoder.onnx');
    const encoder = path.join(dir, 'encoder.onnx');
    const hashes = [decoder, encoder].map(sha256);
    const inputs = { layer: 'blocks.2.cross_attn.kv,blocks.3.cross_attn.kv', source: 'red', target: 'blue', templates: ['the big ball is {}', 'the small cup is {}'], decoderPrompt: 'colour:', out: path.join(tmp, 'decoder.edited.onnx') };
    assert.equal(await mech.edit(decoder, inputs), undefined, 'a decoder without its encoder is refused');
    assert.ok(!fs.existsSync(inputs.out));
    const opened = mech.models().find((m) => m.path === decoder);
    assert.ok(opened);
    const site = (await mech.engine.request('editSite', { id: (opened as unknown as { id: string }).id, layer: inputs.layer })) as { kind: string; weights?: string[]; conditioningInputs?: string[]; problem?: string };
    assert.equal(site.kind, 'encoder-decoder');
    assert.equal(site.weights?.length, 4);
    assert.deepEqual(site.conditioningInputs, ['encoder_hidden_states']);
    assert.equal(site.problem, undefined);
    const got = await mech.edit(decoder, { ...inputs, encoder });
    assert.ok(got, 'edit() with the encoder returned nothing (see the error notification)');
    const r = got.result as unknown as { kind: string; weights: string[]; after: { hits: number; prompts: { top: { text: string }[] }[] } };
    assert.equal(r.kind, 'encoder-decoder');
    assert.equal(r.weights.length, 4);
    assert.equal(r.after.hits, 2, JSON.stringify(r.after.prompts.map((p) => p.top[0].text)));
    assert.deepEqual([decoder, encoder].map(sha256), hashes, 'the original files changed');
  });
});
