// In-host tests of cross-attention localization: through the extension's API on the encdec
// fixture, one graph (model.onnx) and the optimum layout (decoder.onnx + encoder.onnx) must
// give the CLI's numbers (`mechanist localize ... --json`) and the known answer (decoder layers
// 2 and 3); the run is stored and shown; the edit button runs mechanist.editConcept when it
// exists and says so when it does not; a decoder without its encoder gets the engine's error.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { until } from './until';
import { cli, fixtureDir } from './fixtures';

const EXTENSION_ID = 'mechanist.mechanist';
const TOL = 1e-5;
const PROMPT = 'the big ball is red';
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
  localizeEdit(runId: string, start: number): Promise<{ started: boolean; message?: string }>;
  runs(): { id: string; kind: string; modelPath: string }[];
  selection(): string | undefined;
}

function close(a: number[], b: number[], what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= TOL, `${what}[${i}]: ${x} vs ${b[i]}`));
}

async function api(): Promise<Api> {
  const ext = vscode.extensions.getExtension<Api>(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} is not loaded`);
  const exports = await ext.activate();
  assert.equal(typeof exports.localize, 'function', 'the API has no localize()');
  return exports;
}

describe('Localization', function () {
  this.timeout(120_000);
  let first: LocalizeRun | undefined;

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
    assert.equal(r.encoderPath, encoder);
    const ref = cli<LocalizeResult>('localize', decoder, '--encoder', encoder, '--prompt', PROMPT, '--target-prompt', TARGET, '--decoder-prompt', 'colour:', '--answer', ' blue', '--window', '2');
    close(r.result.scores, ref.scores, 'scores');
    assert.deepEqual(r.result.best, ref.best);
    assert.equal(await mech.localize(decoder, { prompt: PROMPT, targetPrompt: TARGET, window: 2 }), undefined, 'a decoder without its encoder is refused');
  });

  it('the edit button runs mechanist.editConcept when it exists, else says it is not available', async () => {
    const mech = await api();
    assert.ok(first, 'needs the first test’s run');
    const registered = (await vscode.commands.getCommands(true)).includes('mechanist.editConcept');
    if (!registered) {
      const r = await mech.localizeEdit(first.id, first.result.best.start);
      assert.equal(r.started, false);
      assert.match(r.message ?? '', /not available/);
      return;
    }
    // The edit flow asks questions: start it, then dismiss its first prompt.
    const started = mech.localizeEdit(first.id, first.result.best.start);
    await new Promise((res) => setTimeout(res, 1500));
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    const r = await Promise.race([started, new Promise<{ started: boolean }>((res) => setTimeout(() => res({ started: true }), 5000))]);
    assert.equal(r.started, true);
  });
});
