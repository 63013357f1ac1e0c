/**
 * "Mechanist: Edit Concept Here...": a closed-form edit of one linear weight (Diff-QuickFix /
 * LocoEdit) at a Layer Explorer node (block, MLP, attention, a cross-attention K/V projection),
 * from the palette (model and layer asked, `auto` offered) or from the localization panel
 * (`{modelPath, layers, projections, ...}`: the window's K and V projections, all edited together
 * into one file by default, as LocoEdit edits every layer of a localised window). Asks source,
 * target, templates, (encoder-decoders: the decoder prompt and, for a decoder exported apart, the
 * encoder file) lambda and the new file; runs with a cancellable progress notification; records
 * the run and opens the before/after panel, whose buttons open, discard or move the edited model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { withEngineProgress } from './progress';
import type { EditSiteInfo } from '../engine/methods/edit';
import type { OpenedModel } from '../engine/protocol';
import { ExplorerNode } from '../providers/explorerNodes';
import type { EditRequest as RuntimeEditRequest, EditResult } from '../runtime/methods/edit';
import type { StoredRun } from '../runStore';
import type { Services } from '../services';
import { EditPanel } from '../webviews/edit/panel';
import type { EditHost } from '../webviews/edit/panel';
import { blockOf } from '../webviews/edit/protocol';
import type { EditFileState, EditRun } from '../webviews/edit/protocol';
import { askEncoder } from './localize';
import { pickModel, requireTrust } from './pickModel';

/** What an edit needs besides the model (the API passes it directly; `out` is the new file; `encoder`: a decoder's encoder file). */
export type EditInputs = Omit<RuntimeEditRequest, 'backend'> & { encoder?: string };

/**
 * The argument the localization panel passes: a model, the window's cross-attention layers and
 * projections, and what the localization compared (the edit's defaults: source and target are
 * where the two prompts differ, the template is the prompt with that span as {}).
 */
export interface EditConceptArg {
  modelPath: string;
  layers?: string[];
  projections?: ('k' | 'v')[];
  encoderPath?: string;
  prompt?: string;
  targetPrompt?: string;
  decoderPrompt?: string;
  /** Answers given by the caller (an API, a test): those questions are not asked. */
  answers?: Partial<EditInputs>;
}

/** What the edit feature adds to the extension's API (for tests). */
export interface EditApi {
  /** Runs a concept edit without prompts (opens the model if needed) and shows the panel. */
  edit(modelPath: string, inputs: EditInputs): Promise<EditRun | undefined>;
  /** Open edit panels: run id and whether the webview loaded. */
  editPanels(): { runId: string; loaded: boolean }[];
  /** A stored edit run (its whole result). */
  editRun(runId: string): EditRun | undefined;
  /** Where a run's edited model is now. */
  editFile(runId: string): EditFileState | undefined;
  /** Opens a run's edited model in the Layer Explorer, as the panel's button does. */
  editOpen(runId: string): Promise<boolean>;
  /** Deletes a run's edited files as "Discard edit" does after its confirmation (here: confirmed). */
  editDiscard(runId: string): Promise<boolean>;
  /** Moves a run's edited model to `to`, as "Save as..." does for the file picked. */
  editSaveAs(runId: string, to: string): Promise<string | undefined>;
}

/** The inputs last used per model, offered again. */
const last = new Map<string, Pick<EditInputs, 'source' | 'target' | 'templates' | 'lambda' | 'decoderPrompt'>>();

/** A concept as part of a file name: `red circle` -> `red-circle`. */
export function slug(s: string): string {
  return (
    s
      .trim()
      .replace(/[^\p{L}\p{N}_-]+/gu, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'concept'
  );
}

/** `<name>.edited-<source>-to-<target>.onnx` beside the original, numbered when taken. */
export function defaultOut(modelPath: string, source: string, target: string, exists: (p: string) => boolean = fs.existsSync): string {
  const dir = path.dirname(modelPath);
  const base = path.basename(modelPath, '.onnx');
  const stem = `${base}.edited-${slug(source)}-to-${slug(target)}`;
  let out = path.join(dir, `${stem}.onnx`);
  for (let i = 2; exists(out) || out === modelPath; i++) out = path.join(dir, `${stem}-${i}.onnx`);
  return out;
}

/** Splits `;`-separated templates. */
export function parseTemplates(text: string): string[] {
  return text
    .split(';')
    .map((t) => t.trim())
    .filter(Boolean);
}

/** Why a templates text is not usable, or undefined. */
export function templatesProblem(text: string): string | undefined {
  const list = parseTemplates(text);
  if (!list.length) return 'Enter at least one template with {} for the concept';
  const bad = list.find((t) => !t.includes('{}'));
  return bad ? `"${bad}" has no {} for the concept` : undefined;
}

/**
 * Source, target and template from a localization's prompt pair: the words where the two differ
 * (`the big ball is red` / `the big ball is blue` -> `red`, `blue`, `the big ball is {}`).
 */
export function conceptsOf(prompt: string, targetPrompt: string): { source: string; target: string; template: string } | undefined {
  const a = prompt.trim().split(/\s+/);
  const b = targetPrompt.trim().split(/\s+/);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  let j = 0;
  while (j < a.length - i && j < b.length - i && a[a.length - 1 - j] === b[b.length - 1 - j]) j++;
  const source = a.slice(i, a.length - j).join(' ');
  const target = b.slice(i, b.length - j).join(' ');
  if (!source || !target) return undefined;
  return { source, target, template: [...a.slice(0, i), '{}', ...a.slice(a.length - j)].join(' ') };
}

/** Whether a Layer Explorer node sits in an encoder stack (its blocks are not `blocks.L`). */
function inEncoderStack(node: ExplorerNode): boolean {
  for (let n: ExplorerNode | undefined = node.parent; n; n = n.parent) if (n.kind === 'stack') return true;
  return false;
}

interface LayerChoice {
  layer: string;
  label: string;
  description?: string;
}

/** The edit sites of a model for the palette: `auto`, then each block's MLP, attention and cross-attention K/V. */
function layerChoices(model: OpenedModel): LayerChoice[] {
  const out: LayerChoice[] = [{ layer: 'auto', label: 'auto', description: 'language models: the MLP a causal trace finds; encoder-decoders: K and V of the cross-attention window LocoGen finds; text encoders: block 0’s attention output' }];
  const feat = (p?: { weight: string; inFeatures: number; outFeatures: number }): string | undefined => p && `${p.weight} · ${p.inFeatures} → ${p.outFeatures}`;
  for (const b of model.blocks) {
    if (b.mlp?.projections.out) out.push({ layer: `blocks.${b.index}.mlp`, label: `block ${b.index} MLP output`, description: feat(b.mlp.projections.out) });
    if (b.attention?.projections.o) out.push({ layer: `blocks.${b.index}.attn`, label: `block ${b.index} attention output`, description: feat(b.attention.projections.o) });
    const ca = b.crossAttention?.projections;
    if (ca?.k && ca.v) out.push({ layer: `blocks.${b.index}.cross_attn.kv`, label: `block ${b.index} cross-attention K and V projections`, description: 'both, in one edit (LocoEdit)' });
    for (const p of ['k', 'v'] as const) {
      const proj = b.crossAttention?.projections[p];
      if (proj) out.push({ layer: `blocks.${b.index}.cross_attn.${p}`, label: `block ${b.index} cross-attention ${p.toUpperCase()} projection`, description: feat(proj) });
    }
  }
  return out;
}

/** The `--layer` of a Layer Explorer node, asking where a node has several (cross-attention: K or V). */
async function layerOfNode(node: ExplorerNode, kind: EditSiteInfo['kind']): Promise<string | undefined> {
  const L = node.layer;
  if (L === undefined) return undefined;
  const encoder = inEncoderStack(node);
  const b = (encoder ? node.model.encoderBlocks : node.model.blocks).find((x) => x.index === L);
  if (!b) return undefined;
  // Encoder-stack blocks of an encoder-decoder are not `blocks.L`: name their weights.
  const name = (form: string, weight: string | undefined): string | undefined => (encoder ? weight : form);
  switch (node.kind) {
    case 'mlp':
      return name(`blocks.${L}.mlp`, b.mlp?.projections.out?.weight);
    case 'attention':
      return name(`blocks.${L}.attn`, b.attention?.projections.o?.weight);
    case 'block': {
      const mlp = b.mlp?.projections.out && name(`blocks.${L}.mlp`, b.mlp.projections.out.weight);
      const attn = b.attention?.projections.o && name(`blocks.${L}.attn`, b.attention.projections.o.weight);
      // An encoder-decoder's keys are the conditioning: a decoder block is edited at its cross-attention K and V.
      if (kind === 'encoder-decoder' && !encoder && b.crossAttention?.projections.k && b.crossAttention.projections.v) return `blocks.${L}.cross_attn.kv`;
      return kind === 'language-model' ? (mlp ?? attn) : (attn ?? mlp);
    }
    case 'crossAttention': {
      const projs = b.crossAttention?.projections ?? {};
      const keys = (['k', 'v'] as const).filter((k) => projs[k]);
      const items = (keys.length ? keys : Object.keys(projs)).map((k) => ({
        label: `${k.toUpperCase()} projection`,
        description: `${projs[k].weight} · ${projs[k].inFeatures} → ${projs[k].outFeatures}`,
        layer: ['k', 'v'].includes(k) && !encoder ? `blocks.${L}.cross_attn.${k}` : projs[k].weight,
      }));
      if (!items.length) return undefined;
      // LocoEdit edits both: offered first.
      if (keys.length === 2 && !encoder) items.unshift({ label: 'K and V projections', description: 'both, in one edit (LocoEdit)', layer: `blocks.${L}.cross_attn.kv` });
      if (items.length === 1) return items[0].layer;
      const pick = await vscode.window.showQuickPick(items, { title: `Edit concept: which projection of block ${L}’s cross-attention?`, placeHolder: 'The keys are the conditioning tokens’ states; K changes where the model looks, V what it reads', ignoreFocusOut: true });
      return pick?.layer;
    }
    default:
      return undefined;
  }
}

/**
 * The layers to edit from the localization panel's window: every K and V projection of the
 * window, all picked by default (LocoEdit edits them all; each weight gets its own closed-form
 * update, written into one file). Several picked weights become one comma-separated `--layer`.
 */
async function layerOfArg(arg: EditConceptArg): Promise<string | undefined> {
  if (arg.answers?.layer) return arg.answers.layer;
  const layers = arg.layers?.length ? arg.layers : ['auto'];
  const projections = arg.projections?.length ? arg.projections : undefined;
  const items = layers.flatMap((l) =>
    projections && /\.cross_attn$/.test(l)
      ? projections.map((p) => ({ label: `${l}.${p}`, description: `block ${blockOf(`${l}.`) ?? '?'} cross-attention ${p.toUpperCase()} projection`, layer: `${l}.${p}`, picked: true }))
      : [{ label: l, description: l === 'auto' ? 'let the engine choose' : '', layer: l, picked: true }],
  );
  if (items.length === 1) return items[0].layer;
  const picks = await vscode.window.showQuickPick(items, {
    title: `Edit concept in ${layers.join(', ')}: which weights?`,
    placeHolder: `All ${items.length} are edited together into one file (LocoEdit edits every K and V of the window); untick any to leave it`,
    canPickMany: true,
    ignoreFocusOut: true,
  });
  return picks?.length ? picks.map((p) => p.layer).join(',') : undefined;
}

/** Defaults for an edit's questions (from the localization run, or the last edit of the model). */
type EditDefaults = Partial<Pick<EditInputs, 'source' | 'target' | 'templates' | 'lambda' | 'decoderPrompt'>>;

/** Asks source, target, templates, (encoder-decoders) the decoder prompt, lambda and the new file; undefined when the user cancels. Questions `answers` holds are not asked. */
async function askInputs(model: OpenedModel, site: EditSiteInfo, given: EditDefaults = {}, answers: Partial<EditInputs> = {}): Promise<EditInputs | undefined> {
  const prev: EditDefaults = { ...last.get(model.path), ...given };
  const lm = site.kind === 'language-model';
  const encdec = site.kind === 'encoder-decoder';
  const steps = encdec ? 6 : 5;
  const where = site.weight ? `${site.layer} (${site.weight}${site.features ? `, ${site.features[1]} → ${site.features[0]}` : ''})` : site.layer;
  const what = lm ? 'language model' : encdec ? 'encoder-decoder’s conditioning' : 'text encoder';
  const source =
    answers.source ??
    (await vscode.window.showInputBox({
      title: `Edit concept at ${where} (1/${steps}): source concept`,
      prompt: `The concept to change in this ${what}, e.g. ${lm ? '"Zorvath"' : encdec ? '"red"' : '"red circle"'}; it fills {} in each template`,
      value: prev.source ?? '',
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? undefined : 'Enter a concept'),
    }));
  if (!source) return undefined;
  const target =
    answers.target ??
    (await vscode.window.showInputBox({
      title: `Edit concept at ${where} (2/${steps}): target concept`,
      prompt: `The model should treat "${source}" like this concept, e.g. ${lm ? '"Keloph"' : encdec ? '"blue"' : '"blue circle"'}`,
      value: prev.target ?? '',
      ignoreFocusOut: true,
      validateInput: (v) => (!v.trim() ? 'Enter a concept' : v === source ? 'The target must differ from the source' : undefined),
    }));
  if (!target) return undefined;
  const templatesText = answers.templates
    ? answers.templates.join('; ')
    : await vscode.window.showInputBox({
        title: `Edit concept (3/${steps}): ${lm ? 'relation templates' : encdec ? 'encoder prompt templates' : 'prompt templates'}, separated by ;`,
        prompt: lm
          ? 'Prompts whose next token the edit should change, {} for the concept; these generic ones are defaults: write relations your model knows'
          : encdec
            ? 'Conditioning prompts, {} for the concept: the keys are the encoder’s output at the concept’s tokens (LocoEdit); more templates generalise better'
            : 'Prompts the encoder should embed like the target, {} for the concept (Diff-QuickFix’s defaults shown)',
        value: (prev.templates ?? site.templates).join('; '),
        ignoreFocusOut: true,
        validateInput: templatesProblem,
      });
  if (!templatesText) return undefined;
  let decoderPrompt: string | undefined;
  if (encdec) {
    decoderPrompt =
      answers.decoderPrompt ??
      (await vscode.window.showInputBox({
        title: `Edit concept (4/${steps}): decoder prompt (optional)`,
        prompt: 'Text the decoder starts from after its start token, e.g. "colour:"; its next token is what the before/after compares; empty for none',
        value: prev.decoderPrompt ?? '',
        ignoreFocusOut: true,
      }));
    if (decoderPrompt === undefined) return undefined;
  }
  const lambdaText =
    answers.lambda !== undefined
      ? String(answers.lambda)
      : await vscode.window.showInputBox({
          title: `Edit concept (${steps - 1}/${steps}): lambda`,
          prompt: 'Ridge weight keeping W′ near W: smaller edits harder, larger keeps more (default 0.01)',
          value: String(prev.lambda ?? 0.01),
          ignoreFocusOut: true,
          validateInput: (v) => (Number(v) > 0 && Number.isFinite(Number(v)) ? undefined : 'A positive number, e.g. 0.01'),
        });
  if (!lambdaText) return undefined;
  const suggested = defaultOut(model.path, source, target);
  const out =
    answers.out ??
    (await vscode.window.showInputBox({
      title: `Edit concept (${steps}/${steps}): the edited model’s file`,
      prompt: 'A new .onnx file (the original is never modified)',
      value: suggested,
      valueSelection: [suggested.length - path.basename(suggested).length, suggested.length - '.onnx'.length],
      ignoreFocusOut: true,
      validateInput: (v) => outProblem(model.path, v),
    }));
  if (!out) return undefined;
  const templates = parseTemplates(templatesText);
  const lambda = Number(lambdaText);
  last.set(model.path, { source, target, templates, lambda, decoderPrompt });
  return { ...answers, layer: site.layer, source, target, templates, lambda, decoderPrompt: decoderPrompt || undefined, out: path.resolve(out.trim()) };
}

/** Why a path cannot be the edited model's file, or undefined. */
export function outProblem(original: string, file: string): string | undefined {
  const p = path.resolve(file.trim());
  if (!file.trim()) return 'Enter a file path';
  if (p === path.resolve(original)) return 'That is the original model: choose a new file';
  if (!p.endsWith('.onnx')) return 'The file name must end in .onnx';
  if (!fs.existsSync(path.dirname(p))) return `The folder ${path.dirname(p)} does not exist`;
  if (fs.existsSync(p)) return 'That file exists: choose a new name';
  return undefined;
}

/** What a stored edit run holds. */
export interface EditData {
  result: EditResult;
}

/** The panel's view of a stored edit run. */
export function editRun(r: StoredRun<EditData>): EditRun {
  return { id: r.id, modelPath: r.modelPath, createdAt: r.createdAt, result: r.data.result };
}

/** Files an edit may delete: its own (beside its output, named after it), never the original. */
export function ownFiles(state: Pick<EditFileState, 'out' | 'files'>, original: string): string[] {
  const out = path.resolve(state.out);
  const dir = path.dirname(out);
  const base = path.basename(out);
  return [...new Set([out, ...state.files.map((f) => path.resolve(f))])].filter((f) => f !== path.resolve(original) && path.dirname(f) === dir && path.basename(f).startsWith(base));
}

/** The concept-edit feature: its command, panel restoration, the opener of its runs, and its API. */
export function register(s: Services): { disposables: vscode.Disposable[]; api: EditApi } {
  const key = (runId: string): string => `mechanist.editFile:${runId}`;
  const saved = (runId: string): EditFileState | undefined => s.context.globalState.get<EditFileState>(key(runId));
  const file = (run: EditRun): EditFileState => {
    const st = saved(run.id) ?? { out: run.result.out, files: run.result.files, exists: true };
    return { ...st, exists: !st.discarded && fs.existsSync(st.out) };
  };
  const setFile = async (run: EditRun, st: EditFileState): Promise<void> => {
    await s.context.globalState.update(key(run.id), st);
    EditPanel.refresh(run.id);
  };
  const closeIfOpen = async (p: string): Promise<boolean> => {
    const m = s.models.find(p);
    if (m) await s.models.close(m.id);
    return !!m;
  };
  const load = (id: string): EditRun | undefined => {
    const r = s.runs.get<EditData>(id);
    return r?.kind === 'edit' ? editRun(r) : undefined;
  };

  const discardFiles = async (run: EditRun, confirm: boolean): Promise<boolean> => {
    const st = file(run);
    const files = ownFiles(st, run.modelPath).filter((f) => fs.existsSync(f));
    if (!files.length) {
      void vscode.window.showInformationMessage('Mechanist: the edited model’s files are already gone.');
      await setFile(run, { ...st, exists: false, discarded: true });
      return false;
    }
    if (confirm) {
      const choice = await vscode.window.showWarningMessage(
        `Discard the edit "${run.result.source}" → "${run.result.target}"?`,
        { modal: true, detail: `This deletes:\n${files.join('\n')}\n\nThe original model ${run.modelPath} is not touched.` },
        'Delete Edited Model',
      );
      if (choice !== 'Delete Edited Model') return false;
    }
    await closeIfOpen(st.out);
    for (const f of files) fs.rmSync(f, { force: true });
    await setFile(run, { ...st, exists: false, discarded: true });
    return true;
  };

  const moveTo = async (run: EditRun, to: string): Promise<string | undefined> => {
    const st = file(run);
    if (!st.exists) throw new Error('the edited model no longer exists');
    const problem = outProblem(run.modelPath, to);
    if (problem) throw new Error(problem);
    const wasOpen = await closeIfOpen(st.out);
    const r = await s.engine.request('editSaveAs', { from: st.out, files: ownFiles(st, run.modelPath), weights: run.result.weights ?? [run.result.weight], to: path.resolve(to), original: run.modelPath });
    await setFile(run, { out: r.out, files: r.files, exists: true });
    if (wasOpen) await s.open(vscode.Uri.file(r.out));
    return r.out;
  };

  const host: EditHost = {
    file,
    async open(run) {
      const st = file(run);
      if (!st.exists) {
        void vscode.window.showWarningMessage(`Mechanist: the edited model ${st.out} no longer exists.`);
        return false;
      }
      return !!(await s.open(vscode.Uri.file(st.out)));
    },
    discard: (run) => discardFiles(run, true),
    async saveAs(run) {
      const st = file(run);
      const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(st.out), filters: { 'ONNX model': ['onnx'] }, title: 'Save the edited model as', saveLabel: 'Move Here' });
      if (!target) return undefined;
      try {
        const out = await moveTo(run, target.fsPath);
        if (out) void vscode.window.showInformationMessage(`Mechanist: the edited model is now ${out}.`);
        return out;
      } catch (e) {
        void vscode.window.showErrorMessage(`Mechanist: ${e instanceof Error ? e.message : String(e)}`);
        return undefined;
      }
    },
    async reveal(run) {
      const r = run.result;
      const block = blockOf(r.layer) ?? r.localisation?.layer;
      if (block === undefined) return false;
      const part = /\.mlp\b/.test(r.layer) ? 'mlp' : /\.cross_attn\b/.test(r.layer) ? 'crossAttention' : /\.attn\b/.test(r.layer) ? 'attention' : undefined;
      return s.reveal(run.modelPath, block, part);
    },
  };
  const show = (run: EditRun): EditPanel => EditPanel.show(run, s.context.extensionUri, host);

  /** Checks the model can be edited at all (a tokenizer, text inputs); the site info or undefined after saying why. */
  const check = async (model: OpenedModel, layer: string): Promise<EditSiteInfo | undefined> => {
    try {
      const site = await s.engine.request('editSite', { id: model.id, layer });
      if (site.problem) {
        void vscode.window.showErrorMessage(`Mechanist: cannot edit ${path.basename(model.path)}: a concept edit runs the model on text prompts, and ${site.problem}.`);
        return undefined;
      }
      return site;
    } catch (e) {
      void vscode.window.showErrorMessage(`Mechanist: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  };

  const run = async (model: OpenedModel, inputs: EditInputs): Promise<EditRun | undefined> => {
    try {
      const result = await withEngineProgress(`Editing "${inputs.source}" → "${inputs.target}" at ${inputs.layer}`, 'concept edit', (opts) => s.engine.request('edit', { id: model.id, ...inputs }, opts), 'no file was written');
      if (!result) return undefined;
      const stored = s.runs.add<EditData>('edit', model.path, `${result.source} → ${result.target} · ${result.layer}`, { result });
      const r = editRun(stored);
      show(r);
      return r;
    } finally {
      void s.status.refresh();
    }
  };

  const command = async (arg?: unknown): Promise<EditRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const given = !(arg instanceof ExplorerNode) && !(arg instanceof vscode.Uri) && arg && typeof arg === 'object' && typeof (arg as EditConceptArg).modelPath === 'string' ? (arg as EditConceptArg) : undefined;
    const model = given ? (s.models.find(given.modelPath) ?? (await s.open(vscode.Uri.file(given.modelPath)))) : await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    const general = await check(model, 'auto');
    if (!general) return undefined;
    let layer: string | undefined;
    if (arg instanceof ExplorerNode) {
      layer = await layerOfNode(arg, general.kind);
      if (!layer && arg.kind !== 'crossAttention') void vscode.window.showWarningMessage(`Mechanist: ${arg.label} has no linear layer a concept edit can change.`);
    } else if (given) layer = await layerOfArg(given);
    else {
      const pick = await vscode.window.showQuickPick(
        layerChoices(model).map((c) => ({ ...c, description: c.layer === 'auto' ? c.description : `${c.layer} · ${c.description ?? ''}` })),
        { title: `Edit concept in ${path.basename(model.path)}: which layer?`, placeHolder: general.kind === 'language-model' ? 'A language model: edit an MLP output (or let a causal trace choose: auto)' : 'A text encoder: the first attention output is where Diff-QuickFix edits', ignoreFocusOut: true },
      );
      layer = pick?.layer;
    }
    if (!layer) return undefined;
    const site = layer === 'auto' ? general : await check(model, layer);
    if (!site) return undefined;
    // A decoder exported apart reads its conditioning from its encoder file.
    let encoder = given?.answers?.encoder ?? given?.encoderPath;
    if (site.conditioningInputs?.length && !encoder) {
      encoder = await askEncoder(s, model, 'Edit concept');
      if (!encoder) return undefined;
    }
    const pair = given?.prompt && given.targetPrompt ? conceptsOf(given.prompt, given.targetPrompt) : undefined;
    const defaults: EditDefaults = pair ? { source: pair.source, target: pair.target, templates: [pair.template], decoderPrompt: given?.decoderPrompt } : given?.decoderPrompt !== undefined ? { decoderPrompt: given.decoderPrompt } : {};
    const inputs = await askInputs(model, site, defaults, given?.answers);
    return inputs ? run(model, { ...inputs, encoder: site.conditioningInputs?.length ? encoder : undefined }) : undefined;
  };

  const runById = (id: string): EditRun => {
    const r = load(id);
    if (!r) throw new Error(`no stored edit run ${id}`);
    return r;
  };

  return {
    disposables: [
      vscode.commands.registerCommand('mechanist.editConcept', command),
      EditPanel.registerSerializer(load, s.context.extensionUri, host),
      s.runs.registerOpener('edit', (r) => show(editRun(r as StoredRun<EditData>))),
    ],
    api: {
      edit: async (modelPath, inputs) => {
        const model = s.models.find(modelPath) ?? (await s.open(vscode.Uri.file(modelPath)));
        return model ? run(model, inputs) : undefined;
      },
      editPanels: () => EditPanel.panels().map((p) => ({ runId: p.runId, loaded: p.loaded })),
      editRun: (id) => load(id),
      editFile: (id) => {
        const r = load(id);
        return r && file(r);
      },
      editOpen: (id) => host.open(runById(id)),
      editDiscard: (id) => discardFiles(runById(id), false),
      editSaveAs: (id, to) => moveTo(runById(id), to),
    },
  };
}
