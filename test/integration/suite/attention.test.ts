// In-host tests of the attention features (patterns, knockout, contributions, logit lens):
// each runs through the extension's API on the gpt2 fixture, must give the numbers the CLI
// gives for the same inputs (`mechanist <method> ... --json`, the same runtime outside VS
// Code), store a run of its kind and open the attention panel; a method that refuses gives
// the engine's one-line error.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as vscode from 'vscode';
import { until } from './until';
import { activatedApi, fixtureDir, repoRoot } from './fixtures';

const PROMPT = 'The home city of Zorwynquill is';
const TOL = 1e-5;

interface PromptTokens {
  ids: number[];
  strings: string[];
}

/** The parts of the extension's API these tests use (see MechanistApi / AttentionApi). */
interface Api {
  models(): { path: string; id: string }[];
  runs(): { id: string; kind: string; modelPath: string }[];
  attention(modelPath: string, inputs: { prompt: string; layer: number; head?: number }): Promise<{ id: string; kind: string; layer: number; tokens: PromptTokens; patterns: number[][][] } | undefined>;
  knockout(
    modelPath: string,
    inputs: { prompt: string; target?: string; sources: { type: 'subject'; subject: string } | { type: 'positions'; positions: number[] }; window?: number },
  ): Promise<
    | { id: string; kind: string; answer: { id: number; text: string }; baseline: number; window: number; windows: [number, number][]; rows: { sources: number[]; p: number[]; relativeChange: number[] }[] }
    | undefined
  >;
  contributions(modelPath: string, inputs: { prompt: string; position?: number }): Promise<{ id: string; kind: string; position: number; heads: number[][]; bySource: number[][][]; outputBiasNorm: number[] } | undefined>;
  lens(
    modelPath: string,
    inputs: { prompt: string; target?: string; topK?: number },
  ): Promise<{ id: string; kind: string; answer: { id: number; text: string }; topK: number; layers: { layer: number; top: { id: number; token: string; p: number }[][]; pAnswer: number[] }[] } | undefined>;
  attentionPanels(): { runId: string; kind: string }[];
  clickHead(modelPath: string, layer: number, head: number): Promise<unknown>;
  engine: { request(method: string, params: unknown): Promise<unknown> };
}

/** `mechanist <args> --json`, parsed (asynchronously: the extension host keeps serving the extension). */
async function cli<T>(...args: string[]): Promise<T> {
  const bin = path.join(repoRoot(), 'bin', 'mechanist.js');
  const { stdout } = await promisify(execFile)(process.execPath, [bin, ...args, '--json', '--quiet'], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as T;
}

/** Every number of `a` within TOL of `b` (same nesting). */
function close(a: unknown, b: unknown, what: string): void {
  if (typeof a === 'number' || typeof b === 'number') {
    assert.ok(typeof a === 'number' && typeof b === 'number' && Math.abs(a - b) <= TOL, `${what}: ${String(a)} vs ${String(b)}`);
    return;
  }
  assert.ok(Array.isArray(a) && Array.isArray(b), `${what}: not arrays`);
  assert.equal(a.length, b.length, `${what}: length`);
  a.forEach((x, i) => close(x, b[i], `${what}[${i}]`));
}

const api = (): Promise<Api> => activatedApi<Api>('attention');

describe('Attention features', function () {
  this.timeout(120_000);
  let mech: Api;
  let model: string;

  before(async () => {
    mech = await api();
    model = path.join(fixtureDir('gpt2'), 'model.onnx');
  });

  it('contributes and registers the four commands', async () => {
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const c of ['mechanist.attentionPatterns', 'mechanist.attentionKnockout', 'mechanist.headContributions', 'mechanist.logitLens']) assert.ok(registered.has(c), `${c} is not registered`);
  });

  it('attention patterns of a layer equal the CLI and open the panel', async () => {
    const run = await mech.attention(model, { prompt: PROMPT, layer: 1, head: 2 });
    assert.ok(run, 'attention() returned nothing (see the error notification)');
    assert.equal(run.kind, 'patterns');
    const ref = await cli<{ tokens: string[]; patterns: number[][][] }>('attention', model, '--prompt', PROMPT, '--layer', '1');
    assert.deepEqual(run.tokens.strings, ref.tokens);
    close(run.patterns, ref.patterns, 'patterns');
    await until('the patterns panel', () => mech.attentionPanels(), (p) => p.some((x) => x.runId === run.id && x.kind === 'patterns'));
    assert.ok(mech.runs().some((r) => r.id === run.id && r.kind === 'patterns'), 'the run is not stored');
    // The same prompt and layer again (another head) reuse the stored run and its panel.
    const again = await mech.attention(model, { prompt: PROMPT, layer: 1, head: 0 });
    assert.equal(again?.id, run.id, 'a second head of the same layer recomputed');
  });

  it('clicking a head in the Layer Explorer shows its pattern for the last prompt, in the same panel', async () => {
    const before = mech.attentionPanels().filter((p) => p.kind === 'patterns').length;
    const run = (await mech.clickHead(model, 2, 1)) as { id: string; kind: string; layer: number; prompt: string } | undefined;
    assert.ok(run, 'the head click showed nothing (untrusted workspace, or an error notification)');
    assert.equal(run.kind, 'patterns');
    assert.equal(run.layer, 2);
    assert.equal(run.prompt, PROMPT, 'the head click did not reuse the last prompt');
    const ref = await cli<{ patterns: number[][][] }>('attention', model, '--prompt', PROMPT, '--layer', '2', '--head', '1');
    close((run as unknown as { patterns: number[][][] }).patterns[1], ref.patterns[0], 'head 1 of layer 2');
    const panels = await until('the patterns panel to show the clicked layer', () => mech.attentionPanels(), (p) => p.some((x) => x.runId === run.id));
    assert.equal(panels.filter((p) => p.kind === 'patterns').length, Math.max(1, before), 'a head click opened another patterns panel instead of reusing the open one');
  });

  it('knockout: the whole subject and each of its tokens equal the CLI', async () => {
    const run = await mech.knockout(model, { prompt: PROMPT, sources: { type: 'subject', subject: 'Zorwynquill' }, window: 2 });
    assert.ok(run, 'knockout() returned nothing (see the error notification)');
    assert.equal(run.kind, 'knockout');
    type Ko = { answer: { id: number }; baseline: number; relativeChange: number[]; sources: number[]; layers: { layers: [number, number]; p: number }[] };
    const all = await cli<Ko>('knockout', model, '--prompt', PROMPT, '--sources', 'subject', '--subject', 'Zorwynquill', '--window', '2');
    assert.equal(run.answer.id, all.answer.id, 'answer');
    close(run.baseline, all.baseline, 'baseline');
    assert.deepEqual(run.rows[0].sources, all.sources, 'sources of the first row');
    assert.deepEqual(run.windows, all.layers.map((l) => l.layers), 'blocked windows');
    close(run.rows[0].relativeChange, all.relativeChange, 'all sources');
    assert.equal(run.rows.length, all.sources.length + 1, 'one row per source token after the whole set');
    for (const [i, s] of all.sources.entries()) {
      const one = await cli<Ko>('knockout', model, '--prompt', PROMPT, '--sources', String(s), '--window', '2');
      assert.deepEqual(run.rows[i + 1].sources, [s]);
      close(run.rows[i + 1].relativeChange, one.relativeChange, `source ${s}`);
      close(run.rows[i + 1].p, one.layers.map((l) => l.p), `p, source ${s}`);
    }
    await until('the knockout panel', () => mech.attentionPanels(), (p) => p.some((x) => x.runId === run.id && x.kind === 'knockout'));
  });

  it('head contributions equal the CLI', async () => {
    const run = await mech.contributions(model, { prompt: PROMPT });
    assert.ok(run, 'contributions() returned nothing (see the error notification)');
    const ref = await cli<{ position: number; heads: number[][]; bySource: number[][][]; outputBiasNorm: number[] }>('contributions', model, '--prompt', PROMPT);
    assert.equal(run.position, ref.position);
    close(run.heads, ref.heads, 'heads');
    close(run.bySource, ref.bySource, 'bySource');
    close(run.outputBiasNorm, ref.outputBiasNorm, 'outputBiasNorm');
    await until('the contributions panel', () => mech.attentionPanels(), (p) => p.some((x) => x.runId === run.id && x.kind === 'contributions'));
  });

  it('the logit lens equals the CLI', async () => {
    const run = await mech.lens(model, { prompt: PROMPT, target: ' Cairo', topK: 3 });
    assert.ok(run, 'lens() returned nothing (see the error notification)');
    const ref = await cli<{ answer: { id: number }; layers: { layer: number; top: { id: number; p: number }[][]; pAnswer: number[] }[] }>('lens', model, '--prompt', PROMPT, '--target', ' Cairo', '--top', '3');
    assert.equal(run.answer.id, ref.answer.id, 'answer');
    assert.equal(run.layers.length, ref.layers.length);
    run.layers.forEach((l, i) => {
      assert.deepEqual(
        l.top.map((t) => t.map((x) => x.id)),
        ref.layers[i].top.map((t) => t.map((x) => x.id)),
        `top ids of layer ${l.layer}`,
      );
      close(l.top.map((t) => t.map((x) => x.p)), ref.layers[i].top.map((t) => t.map((x) => x.p)), `top p of layer ${l.layer}`);
      close(l.pAnswer, ref.layers[i].pAnswer, `p(answer) of layer ${l.layer}`);
    });
    await until('the lens panel', () => mech.attentionPanels(), (p) => p.some((x) => x.runId === run.id && x.kind === 'lens'));
    const kinds = new Set(mech.runs().map((r) => r.kind));
    for (const k of ['patterns', 'knockout', 'contributions', 'lens']) assert.ok(kinds.has(k), `no stored ${k} run`);
  });

  it('a method that cannot run says why in one line (logit lens on BERT)', async () => {
    const bert = path.join(fixtureDir('bert'), 'model.onnx');
    await vscode.commands.executeCommand('mechanist.openModel', vscode.Uri.file(bert));
    const opened = await until('models() to list bert', () => mech.models(), (m) => m.some((x) => path.resolve(x.path) === path.resolve(bert)));
    const id = opened.find((x) => path.resolve(x.path) === path.resolve(bert))!.id;
    await assert.rejects(
      () => mech.engine.request('logitLens', { id, prompt: 'hello world' }),
      (e: Error) => /logit lens needs a causal language model/.test(e.message) && !e.message.includes('\n'),
    );
    // Through the API the refusal is a notification and no run.
    const before = mech.runs().length;
    assert.equal(await mech.lens(bert, { prompt: 'hello world' }), undefined);
    assert.equal(mech.runs().length, before, 'a refused lens stored a run');
  });
});
