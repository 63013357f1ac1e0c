/**
 * "Mechanist: Localize Attribute...": on a model with cross-attention (and its encoder file when
 * the decoder reads `encoder_hidden_states`), asks the original and target conditioning prompts,
 * the decoder prompt, the answer to watch and the window; runs LocoGen's sweep with a
 * cancellable progress notification; opens the panel, reveals the best window and records the run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { withEngineProgress } from './progress';
import type { LocalizeParams } from '../engine/methods/localize';
import type { OpenedModel } from '../engine/protocol';
import type { StoredRun } from '../runStore';
import type { Services } from '../services';
import { LocalizePanel } from '../webviews/localize/panel';
import type { RevealCross } from '../webviews/localize/panel';
import type { LocalizeRun } from '../webviews/localize/protocol';
import { byProximity } from './decompose';
import { pickModel, requireTrust } from './pickModel';

/** What a localization needs besides the model, asked or given (tests pass it directly). */
export type LocalizeInputs = Omit<LocalizeParams, 'id'>;

const EXCLUDE = '{**/node_modules/**,**/.git/**,**/.vscode-test/**}';

/** The prompts last used per model, offered again. */
const last = new Map<string, LocalizeInputs>();

/** The encoder file of a decoder exported apart: remembered per model, else a sibling encoder*.onnx or one picked. */
export async function askEncoder(s: Services, model: OpenedModel, what = 'Localize'): Promise<string | undefined> {
  const key = `mechanist.encoder:${model.path}`;
  const remembered = s.context.workspaceState.get<string>(key);
  const dir = path.dirname(model.path);
  const siblings = fs
    .readdirSync(dir)
    .filter((f) => /^encoder.*\.onnx$/i.test(f))
    .map((f) => path.join(dir, f));
  const found = (await vscode.workspace.findFiles('**/*encoder*.onnx', EXCLUDE, 50)).map((u) => u.fsPath);
  const files = [...new Set([...(remembered && fs.existsSync(remembered) ? [remembered] : []), ...siblings, ...byProximity(found, dir)])].filter((f) => path.resolve(f) !== path.resolve(model.path));
  const items: (vscode.QuickPickItem & { file?: string })[] = files.map((f) => ({ label: path.basename(f), description: f === remembered ? 'last used' : vscode.workspace.asRelativePath(path.dirname(f)), detail: f, file: f }));
  items.push({ label: '$(folder-opened) Browse…', description: 'another .onnx file' });
  const pick = await vscode.window.showQuickPick(items, { title: `${what}: the encoder of ${path.basename(model.path)}`, placeHolder: 'This decoder reads encoder_hidden_states: which file computes them?', ignoreFocusOut: true });
  if (!pick) return undefined;
  const file = pick.file ?? (await vscode.window.showOpenDialog({ canSelectMany: false, defaultUri: vscode.Uri.file(dir), filters: { ONNX: ['onnx'] }, title: 'Encoder (.onnx)' }))?.[0]?.fsPath;
  if (file) await s.context.workspaceState.update(key, file);
  return file;
}

/** Asks the prompts, answer and window; undefined when the user cancels. */
async function askInputs(layers: number, model: OpenedModel, encoder: string | undefined): Promise<LocalizeInputs | undefined> {
  const prev = last.get(model.path);
  const prompt = await vscode.window.showInputBox({
    title: 'Localize (1/5): original conditioning prompt',
    prompt: 'The prompt the model is conditioned on, e.g. "the big ball is red"',
    value: prev?.prompt ?? '',
    ignoreFocusOut: true,
    validateInput: (v) => (v.trim() ? undefined : 'Enter a prompt'),
  });
  if (!prompt) return undefined;
  const targetPrompt = await vscode.window.showInputBox({
    title: 'Localize (2/5): target conditioning prompt',
    prompt: 'The same prompt with the attribute changed (same number of tokens), e.g. "the big ball is blue"',
    value: prev?.targetPrompt ?? prompt,
    ignoreFocusOut: true,
    validateInput: (v) => (!v.trim() ? 'Enter a prompt' : v === prompt ? 'The target prompt must differ from the original' : undefined),
  });
  if (!targetPrompt) return undefined;
  const decoderPrompt = await vscode.window.showInputBox({
    title: 'Localize (3/5): decoder prompt (optional)',
    prompt: 'Text the decoder starts from after its start token, e.g. "colour:"; empty for none',
    value: prev?.decoderPrompt ?? '',
    ignoreFocusOut: true,
  });
  if (decoderPrompt === undefined) return undefined;
  const answerPick = await vscode.window.showQuickPick(
    [
      { label: 'The model’s top prediction for the target prompt', description: 'default', answer: undefined as string | undefined },
      { label: '$(edit) Type the answer…', description: 'its first token is scored, e.g. " blue"', answer: '' },
    ],
    { title: 'Localize (4/5): answer to watch', ignoreFocusOut: true },
  );
  if (!answerPick) return undefined;
  let answer: string | undefined;
  if (answerPick.answer !== undefined) {
    answer = await vscode.window.showInputBox({ title: 'Answer (as written after the decoder prompt, e.g. " blue")', value: prev?.answer ?? '', ignoreFocusOut: true, validateInput: (v) => (v ? undefined : 'Enter the answer') });
    if (!answer) return undefined;
  }
  const dflt = Math.min(3, layers);
  const windowText = await vscode.window.showInputBox({
    title: `Localize (5/5): window (consecutive cross-attention layers, 1–${layers})`,
    value: String(prev?.window && prev.window <= layers ? prev.window : dflt),
    ignoreFocusOut: true,
    validateInput: (v) => (/^\d+$/.test(v.trim()) && Number(v) >= 1 && Number(v) <= layers ? undefined : `A whole number from 1 to ${layers}`),
  });
  if (!windowText) return undefined;
  const inputs: LocalizeInputs = { encoder, prompt, targetPrompt, decoderPrompt: decoderPrompt || undefined, answer, window: Number(windowText) };
  last.set(model.path, inputs);
  return inputs;
}

/** The panel's view of a stored localization run. */
export function localizeRun(r: StoredRun<Omit<LocalizeRun, 'id' | 'createdAt' | 'modelPath'>>): LocalizeRun {
  return { ...r.data, id: r.id, modelPath: r.modelPath, createdAt: r.createdAt };
}

/** The localization feature: its command, panel restoration and the opener of its runs. */
export function register(s: Services): { disposables: vscode.Disposable[]; localize(modelPath: string, inputs: LocalizeInputs): Promise<LocalizeRun | undefined> } {
  const reveal: RevealCross = (modelPath, block) => s.reveal(modelPath, block, 'crossAttention');
  const show = (run: LocalizeRun): void => void LocalizePanel.show(run, s.context.extensionUri, reveal);

  const run = async (model: OpenedModel, inputs: LocalizeInputs): Promise<LocalizeRun | undefined> => {
    try {
      const result = await withEngineProgress(`Localizing "${inputs.prompt}" → "${inputs.targetPrompt}"`, 'localization', (opts) => s.engine.request('localize', { id: model.id, ...inputs }, opts));
      if (!result) return undefined;
      const data = { encoderPath: inputs.encoder, prompt: inputs.prompt, targetPrompt: inputs.targetPrompt, decoderPrompt: inputs.decoderPrompt, result };
      const stored = s.runs.add('localize', model.path, `${inputs.prompt} → ${inputs.targetPrompt} · blocks ${result.blocks.slice(result.best.start, result.best.start + result.window).join(', ')}`, data);
      const r = localizeRun(stored);
      show(r);
      const best = result.blocks[result.best.start];
      if (best !== undefined) void reveal(model.path, best);
      return r;
    } finally {
      void s.status.refresh();
    }
  };

  const command = async (arg?: unknown): Promise<LocalizeRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const model = await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    let cross: { layers: string[]; conditioningInputs: string[] };
    try {
      cross = await s.engine.request('crossAttention', { id: model.id });
    } catch (e) {
      void vscode.window.showErrorMessage(`Mechanist: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    let encoder: string | undefined;
    if (cross.conditioningInputs.length) {
      encoder = await askEncoder(s, model);
      if (!encoder) return undefined;
    }
    const inputs = await askInputs(cross.layers.length, model, encoder);
    return inputs ? run(model, inputs) : undefined;
  };

  return {
    disposables: [
      vscode.commands.registerCommand('mechanist.localize', command),
      LocalizePanel.registerSerializer((id) => {
        const r = s.runs.get<Omit<LocalizeRun, 'id' | 'createdAt' | 'modelPath'>>(id);
        return r?.kind === 'localize' ? localizeRun(r) : undefined;
      }, s.context.extensionUri, reveal),
      s.runs.registerOpener('localize', (r) => show(localizeRun(r as StoredRun<Omit<LocalizeRun, 'id' | 'createdAt' | 'modelPath'>>))),
    ],
    localize: async (modelPath, inputs) => {
      const model = s.models.find(modelPath) ?? (await s.open(vscode.Uri.file(modelPath)));
      return model ? run(model, inputs) : undefined;
    },
  };
}
