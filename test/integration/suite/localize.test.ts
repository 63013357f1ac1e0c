// In-host tests of cross-attention localization: through the extension's API on the encdec
// fixture, one graph (model.onnx) and the optimum layout (decoder.onnx + encoder.onnx) must
// give the CLI's numbers (`mechanist localize ... --json`) and the known answer (decoder layers
// 2 and 3); the run is stored and shown; a decoder without its encoder gets the engine's error;
// the panel's "Edit concept in these layers" runs the edit flow on the best window's K and V
// projections end to end (its questions answered with their defaults, which come from the run),
// in both layouts, with the CLI's numbers and file.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { until } from './until';
import { activatedApi, cli, fixtureDir } from './fixtures';

const TOL = 1e-5;
const PROMPT = 'the big ball is red';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-localize-edit-'));
const TARGET = 'the big ball is blue';

interface LocalizeResult {
  layers: string[];
  blocks: number[];
  window: number;
  scores: number[];
  complement: number[];
  best: { start: number; layers: string[] };
  baseline: { original: number; target: number };
  answer?: { id: number; text: string };
}

interface Prediction {
  id: number;
  text: string;
  p: number;
}

interface EditResult {
  kind: string;
  out: string;
  weights: string[];
  layers: string[];
  source: string;
  target: string;
  templates: string[];
  decoder?: { prompt: string; ids: number[]; encoder?: string };
  before: { prompts: { prompt: string; top: Prediction[]; pExpected: number }[]; hits: number };
  after: { prompts: { prompt: string; top: Prediction[]; pExpected: number }[]; hits: number };
}

interface LocalizeRun {
  id: string;
  modelPath: string;
  encoderPath?: string;
  result: LocalizeResult;
}

/** The parts of the extension's API these tests use (see MechanistApi). */
interface Api {
  localize(modelPath: string, inputs: { encoder?: string; prompt: string; targetPrompt: string; decoderPrompt?: string; answer?: string; window: number }): Promise<LocalizeRun | undefined>;
  localizePanels(): { runId: string; loaded: boolean }[];
  localizeEdit(runId: string, start: number, answers?: { out?: string }): Promise<{ started: boolean; message?: string; out?: string }>;
  editRun(runId: string): { id: string; result: EditResult } | undefined;
  editPanels(): { runId: string; loaded: boolean }[];
  runs(): { id: string; kind: string; modelPath: string }[];
  selection(): string | undefined;
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function close(a: number[], b: number[], what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= TOL, `${what}[${i}]: ${x} vs ${b[i]}`));
}

const api = (): Promise<Api> => activatedApi<Api>('localize');

describe('Localization', function () {
  this.timeout(120_000);
  let first: LocalizeRun | undefined;
  let second: LocalizeRun | undefined;

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('one graph (model.onnx): the CLI’s window scores, best window blocks 2–3, stored and shown', async () => {
    const mech = await api();
    const model = path.join(fixtureDir('encdec', 'decoder.onnx'), 'model.onnx');
    first = await mech.localize(model, { prompt: PROMPT, targetPrompt: TARGET, decoderPrompt: 'colour:', window: 2 });
    assert.ok(first, 'localize() returned nothing (see the error notification)');
    const ref = cli<LocalizeResult>('localize', model, '--prompt', PROMPT, '--target-prompt', TARGET, '--decoder-prompt', 'colour:', '--window', '2');
    close(first.result.scores, ref.scores, 'scores');
    close(first.result.complement, ref.complement, 'complement');
    close([first.result.baseline.original, first.result.baseline.target], [ref.baseline.original, ref.baseline.target], 'baselines');
    assert.deepEqual(first.result.best, ref.best);
    assert.deepEqual(first.result.best.layers, ['blocks.2.cross_attn', 'blocks.3.cross_attn'], 'the fixture’s known answer');
    assert.equal(first.result.answer?.text, ' blue');
    const id = first.id;
    assert.ok(
      mech.runs().some((r) => r.id === id && r.kind === 'localize'),
      'the run is not in the Runs view',
    );
    await until('the localization panel’s webview to load and ask for its run', () => mech.localizePanels(), (p) => p.some((x) => x.runId === id && x.loaded));
    await until('the best window revealed in the Layer Explorer', () => mech.selection(), (s) => s === 'cross-attention');
  });

  it('decoder.onnx + encoder.onnx: the CLI’s numbers; without the encoder, the engine’s error', async () => {
    const mech = await api();
    const dir = fixtureDir('encdec', 'decoder.onnx');
    const decoder = path.join(dir, 'decoder.onnx');
    const encoder = path.join(dir, 'encoder.onnx');
    const r = await mech.localize(decoder, { encoder, prompt: PROMPT, targetPrompt: TARGET, decoderPrompt: 'colour:', answer: ' blue', window: 2 });
    assert.ok(r, 'localize() on decoder + encoder returned nothing');
    second = r;
    assert.equal(r.encoderPath, encoder);
    const ref = cli<LocalizeResult>('localize', decoder, '--encoder', encoder, '--prompt', PROMPT, '--target-prompt', TARGET, '--decoder-prompt', 'colour:', '--answer', ' blue', '--window', '2');
    close(r.result.scores, ref.scores, 'scores');
    assert.deepEqual(r.result.best, ref.best);
    assert.equal(await mech.localize(decoder, { prompt: PROMPT, targetPrompt: TARGET, window: 2 }), undefined, 'a decoder without its encoder is refused');
  });

  it('“Edit concept in these layers” (one graph): the window’s K and V edited in one file with the defaults the run gives (red → blue, “the big ball is {}”, decoder prompt “colour:”), the CLI’s numbers, the answer becomes “ blue”', async () => {
    const mech = await api();
    assert.ok(first, 'needs the first test’s run');
    const model = first.modelPath;
    const hash = sha256(model);
    const out = path.join(tmp, 'one.edited.onnx');
    const runsBefore = new Set(mech.runs().map((r) => r.id));
    // The flow asks (weights, source, target, templates, decoder prompt, lambda): accept each default.
    const r = await acceptAll(mech.localizeEdit(first.id, first.result.best.start, { out }));
    assert.equal(r.started, true);
    assert.equal(r.out, out, 'the button’s answer names the edited model');
    const run = await editRunSince(mech, runsBefore);
    checkEdit(run.result, out, ['blocks.2.cross_attn', 'blocks.3.cross_attn']);
    assert.equal(sha256(model), hash, 'the original model’s bytes changed');
    const ref = cli<EditResult>('edit', model, '--layer', run.result.layers.join(','), '--source', 'red', '--target', 'blue', '--templates', templatesFile(), '--decoder-prompt', 'colour:', '--out', path.join(tmp, 'one.cli.onnx'));
    assert.deepEqual(run.result.weights, ref.weights);
    close([run.result.after.prompts[0].pExpected, run.result.before.prompts[0].pExpected], [ref.after.prompts[0].pExpected, ref.before.prompts[0].pExpected], 'p(blue) before/after');
    assert.equal(sha256(out), sha256(path.join(tmp, 'one.cli.onnx')), 'the extension and the CLI wrote different files');
    await until('the edit panel to load', () => mech.editPanels(), (ps) => ps.some((p) => p.runId === run.id && p.loaded));
  });

  it('“Edit concept in these layers” (decoder.onnx + encoder.onnx): the run’s encoder file feeds the conditioning; the same answer', async () => {
    const mech = await api();
    assert.ok(second, 'needs the second test’s run');
    const dir = fixtureDir('encdec', 'decoder.onnx');
    const hashes = ['decoder.onnx', 'encoder.onnx'].map((f) => sha256(path.join(dir, f)));
    const out = path.join(tmp, 'two.edited.onnx');
    const runsBefore = new Set(mech.runs().map((r) => r.id));
    const r = await acceptAll(mech.localizeEdit(second.id, second.result.best.start, { out }));
    assert.equal(r.started, true);
    assert.equal(r.out, out, 'the button’s answer names the edited model');
    const run = await editRunSince(mech, runsBefore);
    checkEdit(run.result, out, ['blocks.2.cross_attn', 'blocks.3.cross_attn']);
    assert.equal(run.result.decoder?.encoder, path.join(dir, 'encoder.onnx'));
    assert.deepEqual(['decoder.onnx', 'encoder.onnx'].map((f) => sha256(path.join(dir, f))), hashes, 'the original files changed');
  });
});

/** Accepts whatever quick input is showing (its default) until `flow` ends. */
async function acceptAll<T>(flow: Promise<T>, ms = 100_000): Promise<T> {
  let done = false;
  const settled = flow.finally(() => (done = true));
  const end = Date.now() + ms;
  while (!done && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 500));
    if (!done) await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
  }
  if (!done) {
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    assert.fail(`the edit flow did not end within ${ms} ms`);
  }
  return settled;
}

/** The edit run the flow stored (the newest not in `before`). */
async function editRunSince(mech: Api, before: Set<string>): Promise<{ id: string; result: EditResult }> {
  const runs = await until('the edit run to be stored', () => mech.runs().filter((r) => r.kind === 'edit' && !before.has(r.id)), (r) => r.length === 1);
  const run = mech.editRun(runs[0].id);
  assert.ok(run, `no stored edit run ${runs[0].id}`);
  return run;
}

/** What an edit of the fixture's window must show: the window's K and V, the run's defaults, " blue" after, " red" before. */
function checkEdit(r: EditResult, out: string, layers: string[]): void {
  assert.equal(r.out, out);
  assert.ok(fs.existsSync(out), 'the edited model was not written');
  assert.equal(r.kind, 'encoder-decoder');
  assert.deepEqual(r.layers, layers.flatMap((l) => [`${l}.k`, `${l}.v`]));
  assert.equal(r.source, 'red');
  assert.equal(r.target, 'blue');
  assert.deepEqual(r.templates, ['the big ball is {}']);
  assert.equal(r.decoder?.prompt, 'colour:');
  assert.equal(r.before.prompts[0].top[0].text, ' red');
  assert.equal(r.after.prompts[0].top[0].text, ' blue');
  assert.equal(r.after.hits, 1);
}

function templatesFile(): string {
  const f = path.join(tmp, 'templates.txt');
  fs.writeFileSync(f, 'the big ball is {}\n');
  return f;
}
