/**
 * "Mechanist: Causal Trace...": asks prompt, subject (offering the prompt's spans), target
 * (showing the model's own top predictions) and corruption; runs with a cancellable progress
 * notification; opens the heatmaps and records the run.
 */
import * as vscode from 'vscode';
import type { EngineClient } from '../engine/client';
import { withEngineProgress } from './progress';
import type { OpenedModel } from '../engine/protocol';
import type { Corruption } from '../runtime/methods/causalTrace';
import type { RunStore, StoredRun } from '../runStore';
import type { Services } from '../services';
import { TracePanel } from '../webviews/trace/panel';
import type { TraceRun } from '../webviews/trace/protocol';
import { pickModel, requireTrust } from './pickModel';

/** Everything a trace needs, asked or given (tests pass it directly). */
export interface TraceInputs {
  prompt: string;
  subject: string;
  target?: string;
  corruption: Corruption;
  window: number;
}

/** The prompt last used per model, offered again. */
const lastPrompt = new Map<string, string>();

/** Word spans of a prompt (1-4 words), longest-first within each start, as subject candidates. */
export function promptSpans(prompt: string): string[] {
  const words = prompt.split(/\s+/).filter(Boolean);
  const spans = new Set<string>();
  for (let n = Math.min(4, words.length); n >= 1; n--) for (let i = 0; i + n <= words.length; i++) spans.add(words.slice(i, i + n).join(' ').replace(/[.,;:!?]+$/, ''));
  return [...spans].filter((s) => s.length > 0);
}

/** Asks the user for a trace's inputs; undefined when they cancel. */
export async function askTraceInputs(engine: EngineClient, model: OpenedModel): Promise<TraceInputs | undefined> {
  const cfg = vscode.workspace.getConfiguration('mechanist');
  const prompt = await vscode.window.showInputBox({
    title: 'Causal trace (1/4): prompt',
    prompt: 'A prompt the model completes with a fact, e.g. "The Eiffel Tower is located in the city of"',
    value: lastPrompt.get(model.path) ?? '',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() ? undefined : 'Enter a prompt'),
  });
  if (!prompt) return undefined;
  lastPrompt.set(model.path, prompt);

  const subjectPick = await vscode.window.showQuickPick([...promptSpans(prompt).map((s) => ({ label: s })), { label: '$(edit) Type a subject…', custom: true }], {
    title: 'Causal trace (2/4): subject to corrupt',
    placeHolder: 'The span of the prompt whose tokens are corrupted',
    ignoreFocusOut: true,
  });
  if (!subjectPick) return undefined;
  const subject = 'custom' in subjectPick ? await vscode.window.showInputBox({ title: 'Subject (must occur in the prompt)', ignoreFocusOut: true, validateInput: (v) => (prompt.includes(v) && v ? undefined : 'The subject must occur in the prompt') }) : subjectPick.label;
  if (!subject) return undefined;

  const predictions = await engine.request('predict', { id: model.id, prompt, top: 5 });
  const targetPick = await vscode.window.showQuickPick(
    [
      ...predictions.tokens.map((t, i) => ({ label: JSON.stringify(t.text), description: `p = ${t.p.toFixed(4)}${i === 0 ? ' · the model’s top prediction' : ''}`, target: t.text })),
      { label: '$(edit) Type a target…', description: 'its first token is scored', target: undefined },
    ],
    { title: 'Causal trace (3/4): answer to watch', ignoreFocusOut: true },
  );
  if (!targetPick) return undefined;
  const target = targetPick.target ?? (await vscode.window.showInputBox({ title: 'Target (a continuation of the prompt, e.g. " Paris")', ignoreFocusOut: true }));
  if (target === undefined) return undefined;

  const samples = cfg.get<number>('samples', 10);
  const noiseSetting = cfg.get<string>('noise', '3x');
  const corruptionPick = await vscode.window.showQuickPick(
    [
      { label: `Gaussian noise (${noiseSetting}${/x$/.test(noiseSetting) ? ' the subject embeddings’ std' : ''}, ${samples} samples)`, description: 'ROME’s default', id: 'noise' },
      { label: 'Gaussian noise with another scale…', id: 'noise-custom' },
      { label: 'Replace the subject with another subject…', description: 'symmetric token replacement, deterministic', id: 'replace' },
    ],
    { title: 'Causal trace (4/4): corruption', ignoreFocusOut: true },
  );
  if (!corruptionPick) return undefined;
  let corruption: Corruption;
  if (corruptionPick.id === 'replace') {
    const other = await vscode.window.showInputBox({ title: `Replace "${subject}" with (same number of tokens)`, ignoreFocusOut: true });
    if (!other) return undefined;
    corruption = { type: 'replace', subject: other };
  } else {
    const scale = corruptionPick.id === 'noise' ? noiseSetting : await vscode.window.showInputBox({ title: 'Noise scale: a number, or kx for k times the subject embeddings’ std', value: noiseSetting, ignoreFocusOut: true });
    if (!scale) return undefined;
    corruption = { type: 'noise', nu: parseScale(scale), samples, seed: 1 };
  }
  return { prompt, subject, target: target || undefined, corruption, window: cfg.get<number>('window', 10) };
}

function parseScale(s: string): number | { times: number } {
  const m = /^\s*([0-9.]+)\s*x\s*$/i.exec(s);
  return m ? { times: Number(m[1]) } : Number(s);
}

/** Runs the trace with a cancellable progress notification and records the run. */
export async function runTrace(engine: EngineClient, runs: RunStore, model: OpenedModel, inputs: TraceInputs): Promise<TraceRun | undefined> {
  const results = await withEngineProgress(`Causal trace of "${inputs.subject}"`, 'causal trace', (opts) =>
    engine.request('trace', { id: model.id, prompt: inputs.prompt, subject: inputs.subject, target: inputs.target, corruption: inputs.corruption, kinds: ['residual', 'mlp', 'attn'], window: inputs.window }, opts),
  );
  if (!results) return undefined;
  const stored = runs.add<TraceData>('trace', model.path, `${inputs.subject} → ${results[0]?.answer.text.trim() ?? '?'}`, { prompt: inputs.prompt, subject: inputs.subject, results });
  return traceRun(stored);
}

/** What a stored trace run holds. */
export type TraceData = Pick<TraceRun, 'prompt' | 'subject' | 'results'>;

/** The panel's view of a stored trace run. */
export function traceRun(r: StoredRun<TraceData>): TraceRun {
  return { id: r.id, modelPath: r.modelPath, createdAt: r.createdAt, ...r.data };
}

/** The causal-trace feature: its command, panel restoration and the opener of its runs. */
export function register(s: Services): { disposables: vscode.Disposable[]; trace(modelPath: string, inputs: TraceInputs): Promise<TraceRun | undefined> } {
  const reveal = (modelPath: string, layer: number, part: 'block' | 'mlp' | 'attention'): Promise<boolean> => s.reveal(modelPath, layer, part === 'block' ? undefined : part);
  const show = (run: TraceRun): void => void TracePanel.show(run, s.context.extensionUri, reveal);
  const run = async (model: OpenedModel, inputs: TraceInputs): Promise<TraceRun | undefined> => {
    const result = await runTrace(s.engine, s.runs, model, inputs);
    if (result) show(result);
    void s.status.refresh();
    return result;
  };
  const command = async (arg?: unknown): Promise<TraceRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const model = await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    const inputs = await askTraceInputs(s.engine, model).catch((e: Error) => void vscode.window.showErrorMessage(`Mechanist: ${e.message}`));
    return inputs ? run(model, inputs) : undefined;
  };
  return {
    disposables: [
      vscode.commands.registerCommand('mechanist.causalTrace', command),
      TracePanel.registerSerializer((id) => {
        const r = s.runs.get<TraceData>(id);
        return r?.kind === 'trace' ? traceRun(r) : undefined;
      }, s.context.extensionUri, reveal),
      s.runs.registerOpener('trace', (r) => show(traceRun(r as StoredRun<TraceData>))),
    ],
    trace: async (modelPath, inputs) => {
      const model = s.models.find(modelPath) ?? (await s.open(vscode.Uri.file(modelPath)));
      return model ? run(model, inputs) : undefined;
    },
  };
}
