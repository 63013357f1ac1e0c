/**
 * "Mechanist: Decompose Image...": on a vision transformer, asks an image of the workspace and,
 * for a CLIP vision tower, its text tower (picked once per model) and a feature's descriptions;
 * runs with a cancellable progress notification; opens the decomposition panel and records the
 * run. Selecting a head or MLP in the Layer Explorer highlights it in the model's open panels.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { withEngineProgress } from './progress';
import type { DecomposeParams } from '../engine/methods/decompose';
import type { OpenedModel } from '../engine/protocol';
import type { StoredRun } from '../runStore';
import type { Services } from '../services';
import { DecomposePanel } from '../webviews/decompose/panel';
import type { RevealPart } from '../webviews/decompose/panel';
import { componentOfNode } from '../webviews/decompose/protocol';
import type { DecomposeRun } from '../webviews/decompose/protocol';
import { pickModel, requireTrust } from './pickModel';

/** What a decomposition needs besides the model, asked or given (tests pass it directly). */
export type DecomposeInputs = Omit<DecomposeParams, 'id'>;

/** Features offered, with default descriptions (editable). */
const FEATURES: { label: string; descriptions: string[] }[] = [
  { label: 'colour', descriptions: ['red', 'green', 'blue', 'yellow', 'orange', 'purple', 'black', 'white'] },
  { label: 'shape', descriptions: ['circle', 'square', 'triangle', 'star', 'rectangle'] },
  { label: 'texture', descriptions: ['striped', 'dotted', 'smooth', 'furry', 'checkered'] },
];

const IMAGE_GLOB = '**/*.{png,jpg,jpeg,PNG,JPG,JPEG}';
const EXCLUDE = '{**/node_modules/**,**/.git/**,**/.vscode-test/**}';

/** Files ordered by closeness to `dir` (same folder first, then fewer path steps), then by name. */
export function byProximity(files: string[], dir: string): string[] {
  const steps = (f: string) => path.relative(dir, path.dirname(f)).split(path.sep).filter(Boolean).length;
  return [...files].sort((a, b) => steps(a) - steps(b) || a.localeCompare(b));
}

function isVision(model: OpenedModel): boolean {
  return model.family === 'clip-vision' || model.family === 'vit' || model.inputs.some((i) => i.name === 'pixel_values');
}

/** Says so when a model is no vision transformer. */
function refused(model: OpenedModel): boolean {
  if (isVision(model)) return false;
  void vscode.window.showErrorMessage(`Mechanist: decomposition needs a vision transformer (CLIP vision tower or ViT); ${path.basename(model.path)} is ${model.family}.`);
  return true;
}

/** Asks for an image: workspace PNG/JPEG files nearest the model first, or an open dialog. */
async function askImage(model: OpenedModel): Promise<string | undefined> {
  const found = (await vscode.workspace.findFiles(IMAGE_GLOB, EXCLUDE, 500)).map((u) => u.fsPath);
  const items: (vscode.QuickPickItem & { file?: string })[] = byProximity(found, path.dirname(model.path)).map((f) => ({ label: path.basename(f), description: vscode.workspace.asRelativePath(path.dirname(f)), file: f, iconPath: new vscode.ThemeIcon('file-media') }));
  items.push({ label: '$(folder-opened) Browse…', description: 'an image anywhere' });
  const pick = await vscode.window.showQuickPick(items, { title: 'Decompose (1/3): image', placeHolder: 'An image to decompose (feature scores use the other images of its folder)', matchOnDescription: true, ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.file) return pick.file;
  const uris = await vscode.window.showOpenDialog({ canSelectMany: false, defaultUri: vscode.Uri.file(path.dirname(model.path)), filters: { Images: ['png', 'jpg', 'jpeg'] }, title: 'Image to decompose' });
  return uris?.[0]?.fsPath;
}

/** The CLIP text tower of a vision tower: remembered per model, else picked among the workspace's ONNX files (clip-text first). */
async function askTextTower(s: Services, model: OpenedModel): Promise<string | null | undefined> {
  const key = `mechanist.textTower:${model.path}`;
  const remembered = s.context.workspaceState.get<string>(key);
  if (remembered && fs.existsSync(remembered)) return remembered;
  const found = (await vscode.workspace.findFiles('**/*.onnx', EXCLUDE, 200)).map((u) => u.fsPath).filter((f) => path.resolve(f) !== path.resolve(model.path));
  // Family check only for the nearest files (parsing a large model costs its size).
  const near = byProximity(found, path.dirname(model.path)).slice(0, 12);
  const families = near.length
    ? await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Mechanist: looking for the CLIP text tower', cancellable: true }, (_p, token) => s.engine.request('families', { paths: near }, { cancel: token }))
    : [];
  const clip = families.filter((f) => f.family === 'clip-text');
  const items: (vscode.QuickPickItem & { file?: string; skip?: boolean })[] = [
    ...clip.map((f) => ({ label: path.basename(path.dirname(f.path)) + path.sep + path.basename(f.path), description: 'clip-text', detail: f.path, file: f.path })),
    { label: '$(folder-opened) Browse…', description: 'another .onnx file' },
    { label: '$(circle-slash) No text tower', description: 'components ranked by norm only, no descriptions', skip: true },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Decompose (2/3): the CLIP text tower of this vision tower', placeHolder: clip.length ? 'Remembered for this model' : 'No clip-text model found near this one: browse for it', ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.skip) return null;
  const file = pick.file ?? (await vscode.window.showOpenDialog({ canSelectMany: false, defaultUri: vscode.Uri.file(path.dirname(model.path)), filters: { ONNX: ['onnx'] }, title: 'CLIP text tower (.onnx, tokenizer.json beside it)' }))?.[0]?.fsPath;
  if (file) await s.context.workspaceState.update(key, file);
  return file;
}

/** Asks the feature and its descriptions (presets editable; or none). */
async function askFeature(): Promise<{ feature?: string; descriptions?: string[] } | undefined> {
  const pick = await vscode.window.showQuickPick(
    [
      ...FEATURES.map((f) => ({ label: f.label, description: f.descriptions.join(', '), f })),
      { label: '$(edit) Another feature…', description: 'name it and describe it', f: undefined, custom: true },
      { label: '$(circle-slash) No feature', description: 'rank by norm; no descriptions', f: undefined },
    ],
    { title: 'Decompose (3/3): feature to score components by', ignoreFocusOut: true },
  );
  if (!pick) return undefined;
  if (!pick.f && !('custom' in pick)) return {};
  const feature = pick.f?.label ?? (await vscode.window.showInputBox({ title: 'Feature name', value: 'colour', ignoreFocusOut: true, validateInput: (v) => (v.trim() ? undefined : 'Name the feature') }));
  if (!feature) return undefined;
  const text = await vscode.window.showInputBox({
    title: `Descriptions of "${feature}" (comma-separated)`,
    value: (pick.f?.descriptions ?? []).join(', '),
    ignoreFocusOut: true,
    validateInput: (v) => (v.split(',').filter((x) => x.trim()).length ? undefined : 'Give at least one description'),
  });
  if (!text) return undefined;
  return { feature: feature.trim(), descriptions: text.split(',').map((x) => x.trim()).filter(Boolean) };
}

/** The panel's view of a stored decomposition run. */
export function decomposeRun(r: StoredRun<Omit<DecomposeRun, 'id' | 'createdAt'>>): DecomposeRun {
  return { ...r.data, id: r.id, createdAt: r.createdAt };
}

/** The decomposition feature: its command, panel restoration, the opener of its runs, the Layer Explorer sync. */
export function register(s: Services): { disposables: vscode.Disposable[]; decompose(modelPath: string, inputs: DecomposeInputs): Promise<DecomposeRun | undefined> } {
  const reveal: RevealPart = (modelPath, layer, part, head) => s.reveal(modelPath, layer, part, head);
  const show = (run: DecomposeRun): void => void DecomposePanel.show(run, s.context.extensionUri, reveal);

  const run = async (model: OpenedModel, inputs: DecomposeInputs): Promise<DecomposeRun | undefined> => {
    if (refused(model)) return undefined;
    try {
      const result = await withEngineProgress(`Decomposing ${path.basename(inputs.image)}`, 'decomposition', (opts) => s.engine.request('decompose', { id: model.id, ...inputs }, opts));
      if (!result) return undefined;
      const stored = s.runs.add('decompose', model.path, `${path.basename(inputs.image)}${result.feature ? ` · ${result.feature}` : ''}`, result);
      const r = decomposeRun(stored);
      show(r);
      if (result.scoreNote) void vscode.window.showInformationMessage(`Mechanist: no feature scores: ${result.scoreNote}`);
      return r;
    } finally {
      void s.status.refresh();
    }
  };

  const command = async (arg?: unknown): Promise<DecomposeRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const model = await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    if (refused(model)) return undefined;
    const image = await askImage(model);
    if (!image) return undefined;
    let textModel: string | undefined;
    let feature: { feature?: string; descriptions?: string[] } = {};
    if (model.family === 'clip-vision') {
      const t = await askTextTower(s, model).catch((e: Error) => void vscode.window.showErrorMessage(`Mechanist: ${e.message}`));
      if (t === undefined) return undefined;
      if (t) {
        textModel = t;
        const f = await askFeature();
        if (!f) return undefined;
        feature = f;
      }
    }
    return run(model, { image, textModel, ...feature });
  };

  const sync = s.explorer.view.onDidChangeSelection((e) => {
    const node = e.selection[0];
    const component = node && componentOfNode(node.kind, node.layer, node.head);
    if (component) DecomposePanel.highlight(node.model.path, component);
  });

  return {
    disposables: [
      vscode.commands.registerCommand('mechanist.decompose', command),
      DecomposePanel.registerSerializer((id) => {
        const r = s.runs.get<Omit<DecomposeRun, 'id' | 'createdAt'>>(id);
        return r?.kind === 'decompose' ? decomposeRun(r) : undefined;
      }, s.context.extensionUri, reveal),
      s.runs.registerOpener('decompose', (r) => show(decomposeRun(r as StoredRun<Omit<DecomposeRun, 'id' | 'createdAt'>>))),
      sync,
    ],
    decompose: async (modelPath, inputs) => {
      const model = s.models.find(modelPath) ?? (await s.open(vscode.Uri.file(modelPath)));
      return model ? run(model, inputs) : undefined;
    },
  };
}
