/**
 * The attention features: "Mechanist: Attention Patterns..." (one head, or a layer's heads as a
 * grid; clicking a head in the Layer Explorer shows it for the last prompt used),
 * "Attention Knockout...", "Head Contributions..." and "Logit Lens...". Each asks its inputs,
 * runs in the engine with a cancellable progress notification, stores the run (kinds patterns,
 * knockout, contributions, lens) and shows it in the attention panel; clicking a cell there
 * reveals the block or head in the Layer Explorer.
 */
import * as vscode from 'vscode';
import type { OpenedModel } from '../engine/protocol';
import { ExplorerNode } from '../providers/explorerNodes';
import type { KnockoutSources } from '../runtime/methods/attention';
import type { StoredRun } from '../runStore';
import type { Services } from '../services';
import { AttentionPanel } from '../webviews/attention/panel';
import type { AttentionKind, AttentionRun, ContributionsRun, Focus, KnockoutRun, LensRun, PatternsRun } from '../webviews/attention/protocol';
import { askPrompt, askSources, askTarget, askWindow, lastPrompt, rememberPrompt } from './attentionInputs';
import { withEngineProgress } from './progress';
import { pickModel, requireTrust } from './pickModel';

/** Patterns of one layer; `head` focuses one head (default: the grid of all heads). */
export interface PatternsInputs {
  prompt: string;
  layer: number;
  head?: number;
}

export interface KnockoutInputs {
  prompt: string;
  /** The answer as a continuation (default: the model's top-1). */
  target?: string;
  sources: KnockoutSources;
  /** Layers blocked around each layer (default 9). */
  window?: number;
  /** Also knock out each source token alone (default true). */
  perSource?: boolean;
}

export interface ContributionsInputs {
  prompt: string;
  /** Target position (default: the last). */
  position?: number;
}

export interface LensInputs {
  prompt: string;
  target?: string;
  /** Tokens listed per cell (default 5). */
  topK?: number;
}

/** What the attention features add to the extension's API (the integration tests use it). */
export interface AttentionApi {
  /** Attention patterns of a layer without prompts (opens the model if needed); shows the panel. */
  attention(modelPath: string, inputs: PatternsInputs): Promise<PatternsRun | undefined>;
  knockout(modelPath: string, inputs: KnockoutInputs): Promise<KnockoutRun | undefined>;
  contributions(modelPath: string, inputs: ContributionsInputs): Promise<ContributionsRun | undefined>;
  lens(modelPath: string, inputs: LensInputs): Promise<LensRun | undefined>;
  /** Open attention panels: the run each shows. */
  attentionPanels(): { runId: string; kind: AttentionKind }[];
  /** Runs what clicking a head in the Layer Explorer runs (its tree item's command); the model must be open. */
  clickHead(modelPath: string, layer: number, head: number): Promise<unknown>;
}

const KINDS: AttentionKind[] = ['patterns', 'knockout', 'contributions', 'lens'];

/** The panel's view of a stored run. */
function toRun(r: StoredRun): AttentionRun {
  return { ...(r.data as object), id: r.id, modelPath: r.modelPath, createdAt: r.createdAt, kind: r.kind } as AttentionRun;
}

/** What a stored run holds: the run without its id, model and date. */
type Data<R extends AttentionRun> = Omit<R, 'id' | 'modelPath' | 'createdAt' | 'kind'>;

function shortPrompt(p: string): string {
  return p.length > 40 ? `${p.slice(0, 39)}…` : p;
}

/** Where a Layer Explorer node points: a self-attention layer (and head), or why it cannot. */
function nodeTarget(node: ExplorerNode): { layer?: number; head?: number; error?: string } {
  for (let n: ExplorerNode | undefined = node; n; n = n.parent) {
    if (n.kind === 'stack') return { error: 'per-head methods run on the decoder’s self-attention; encoder blocks are not supported yet' };
    if (n.kind === 'crossAttention') return { error: 'per-head patterns of cross-attention are not supported; choose a self-attention head' };
  }
  return { layer: node.layer, head: node.kind === 'head' ? node.head : undefined };
}

export function register(s: Services): { disposables: vscode.Disposable[]; api: AttentionApi } {
  const reveal = (modelPath: string, layer: number, head?: number, part?: 'block' | 'attention'): Promise<boolean> =>
    s.reveal(modelPath, layer, part === 'block' ? undefined : 'attention', head);
  const show = (run: AttentionRun, focus?: Focus, reuse = false): void => void AttentionPanel.show(run, s.context.extensionUri, reveal, focus, reuse);
  /** Runs already computed this session: model, prompt and layer -> run id (head clicks reuse them). */
  const patternRuns = new Map<string, string>();

  const store = <R extends AttentionRun>(kind: R['kind'], model: OpenedModel, label: string, data: Data<R>): R => {
    rememberPrompt(model.path, (data as { prompt: string }).prompt);
    const stored = s.runs.add(kind, model.path, label, data);
    void s.status.refresh();
    return toRun(stored) as R;
  };

  const modelFor = async (modelPath: string): Promise<OpenedModel | undefined> => s.models.find(modelPath) ?? (await s.open(vscode.Uri.file(modelPath)));

  // ----------------------------------------------------------------- patterns
  const patterns = async (model: OpenedModel, inputs: PatternsInputs, reuse = false): Promise<PatternsRun | undefined> => {
    const key = `${model.path}\n${inputs.prompt}\n${inputs.layer}`;
    const focus: Focus = { head: inputs.head ?? 'all' };
    const known = patternRuns.get(key);
    const cached = known ? s.runs.get(known) : undefined;
    if (cached?.kind === 'patterns') {
      const run = toRun(cached) as PatternsRun;
      rememberPrompt(model.path, inputs.prompt);
      show(run, focus, reuse);
      return run;
    }
    const out = await withEngineProgress(`Attention patterns of layer ${inputs.layer}`, 'attention patterns', (opts) =>
      s.engine.request('attentionPatterns', { id: model.id, prompt: inputs.prompt, layer: inputs.layer }, opts),
    );
    if (!out) return undefined;
    const run = store<PatternsRun>('patterns', model, `L${out.layer} attention · ${shortPrompt(inputs.prompt)}`, { prompt: inputs.prompt, ...out });
    patternRuns.set(key, run.id);
    show(run, focus, reuse);
    return run;
  };

  const patternsCommand = async (arg?: unknown): Promise<PatternsRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const node = arg instanceof ExplorerNode ? arg : undefined;
    const target = node ? nodeTarget(node) : {};
    if (target.error) {
      void vscode.window.showErrorMessage(`Mechanist: ${target.error}.`);
      return undefined;
    }
    const model = await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    // A head click shows the head for the last prompt used; the prompt is asked once.
    const known = node?.kind === 'head' ? lastPrompt(s.runs, model.path) : undefined;
    const prompt = known ?? (await askPrompt(s.runs, model, 'Attention patterns: prompt'));
    if (!prompt) return undefined;
    let layer = target.layer;
    let head = target.head;
    if (layer === undefined) {
      if (model.layers > 0) {
        const pick = await vscode.window.showQuickPick(
          model.blocks.map((b) => ({ label: `Layer ${b.index}`, description: b.attention ? `${b.attention.heads} heads${b.attention.fused ? ` · fused ${b.attention.fused}` : ''}` : 'no attention found', layer: b.index })),
          { title: 'Attention patterns: layer', ignoreFocusOut: true },
        );
        if (!pick) return undefined;
        layer = pick.layer;
        const heads = model.blocks.find((b) => b.index === layer)?.attention?.heads ?? model.heads;
        const headPick = await vscode.window.showQuickPick(
          [{ label: 'All heads', description: 'a grid of every head’s pattern', head: undefined as number | undefined }, ...Array.from({ length: heads }, (_, h) => ({ label: `Head ${h}`, description: '', head: h as number | undefined }))],
          { title: `Attention patterns: head of layer ${layer}`, ignoreFocusOut: true },
        );
        if (!headPick) return undefined;
        head = headPick.head;
      } else layer = 0; // the engine says why it cannot run
    }
    return patterns(model, { prompt, layer, head }, node?.kind === 'head');
  };

  // ----------------------------------------------------------------- knockout
  const knockout = async (model: OpenedModel, inputs: KnockoutInputs, sourcesLabel?: string): Promise<KnockoutRun | undefined> => {
    const window = inputs.window ?? 9;
    const label = sourcesLabel ?? (inputs.sources.type === 'subject' ? inputs.sources.subject : inputs.sources.type === 'span' ? `tokens ${inputs.sources.start}:${inputs.sources.end}` : `tokens ${inputs.sources.positions.join(',')}`);
    const out = await withEngineProgress(`Attention knockout of ${label}`, 'attention knockout', (opts) =>
      s.engine.request('attentionKnockout', { id: model.id, prompt: inputs.prompt, target: inputs.target, sources: inputs.sources, window, perSource: inputs.perSource }, opts),
    );
    if (!out) return undefined;
    const run = store<KnockoutRun>('knockout', model, `knockout ${label} → ${out.answer.text.trim() || out.answer.text}`, { prompt: inputs.prompt, sourcesLabel: label, ...out });
    show(run);
    return run;
  };

  const knockoutCommand = async (arg?: unknown): Promise<KnockoutRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const model = await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    try {
      const prompt = await askPrompt(s.runs, model, 'Attention knockout (1/4): prompt');
      if (!prompt) return undefined;
      const target = await askTarget(s.engine, model, prompt, 'Attention knockout (2/4): answer to watch');
      if (!target) return undefined;
      const sources = await askSources(s.engine, model, prompt, 'Attention knockout (3/4): source tokens the last token may not attend to');
      if (!sources) return undefined;
      const window = await askWindow('Attention knockout (4/4): window k');
      if (window === undefined) return undefined;
      return knockout(model, { prompt, target: target.target, sources: sources.sources, window }, sources.label);
    } catch (e) {
      void vscode.window.showErrorMessage(`Mechanist: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  };

  // ----------------------------------------------------------------- contributions
  const contributions = async (model: OpenedModel, inputs: ContributionsInputs, focus?: Focus): Promise<ContributionsRun | undefined> => {
    const out = await withEngineProgress('Head contributions', 'head contributions', (opts) => s.engine.request('headContributions', { id: model.id, prompt: inputs.prompt, position: inputs.position }, opts));
    if (!out) return undefined;
    const run = store<ContributionsRun>('contributions', model, `contributions to ${JSON.stringify(out.tokens.strings[out.position] ?? '')} · ${shortPrompt(inputs.prompt)}`, { prompt: inputs.prompt, ...out });
    show(run, focus);
    return run;
  };

  const contributionsCommand = async (arg?: unknown): Promise<ContributionsRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const model = await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    const prompt = await askPrompt(s.runs, model, 'Head contributions to the last token: prompt');
    if (!prompt) return undefined;
    const layer = arg instanceof ExplorerNode && arg.kind !== 'model' ? arg.layer : undefined;
    return contributions(model, { prompt }, layer === undefined ? undefined : { layer });
  };

  // ----------------------------------------------------------------- logit lens
  const lens = async (model: OpenedModel, inputs: LensInputs): Promise<LensRun | undefined> => {
    const topK = inputs.topK ?? 5;
    const out = await withEngineProgress('Logit lens', 'logit lens', (opts) => s.engine.request('logitLens', { id: model.id, prompt: inputs.prompt, target: inputs.target, topK }, opts));
    if (!out) return undefined;
    const run = store<LensRun>('lens', model, `lens → ${out.answer.text.trim() || out.answer.text} · ${shortPrompt(inputs.prompt)}`, { prompt: inputs.prompt, ...out });
    show(run);
    return run;
  };

  const lensCommand = async (arg?: unknown): Promise<LensRun | undefined> => {
    if (!(await requireTrust())) return undefined;
    const model = await pickModel(s.models, s.open, arg);
    if (!model) return undefined;
    try {
      const prompt = await askPrompt(s.runs, model, 'Logit lens (1/2): prompt');
      if (!prompt) return undefined;
      const target = await askTarget(s.engine, model, prompt, 'Logit lens (2/2): answer whose probability is highlighted');
      if (!target) return undefined;
      return lens(model, { prompt, target: target.target });
    } catch (e) {
      void vscode.window.showErrorMessage(`Mechanist: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  };

  const load = (id: string): AttentionRun | undefined => {
    const r = s.runs.get(id);
    return r && (KINDS as string[]).includes(r.kind) ? toRun(r) : undefined;
  };

  return {
    disposables: [
      vscode.commands.registerCommand('mechanist.attentionPatterns', patternsCommand),
      vscode.commands.registerCommand('mechanist.attentionKnockout', knockoutCommand),
      vscode.commands.registerCommand('mechanist.headContributions', contributionsCommand),
      vscode.commands.registerCommand('mechanist.logitLens', lensCommand),
      AttentionPanel.registerSerializer(load, s.context.extensionUri, reveal),
      ...KINDS.map((kind) => s.runs.registerOpener(kind, (r) => show(toRun(r)))),
    ],
    api: {
      attention: async (modelPath, inputs) => {
        const model = await modelFor(modelPath);
        return model ? patterns(model, inputs) : undefined;
      },
      knockout: async (modelPath, inputs) => {
        const model = await modelFor(modelPath);
        return model ? knockout(model, inputs) : undefined;
      },
      contributions: async (modelPath, inputs) => {
        const model = await modelFor(modelPath);
        return model ? contributions(model, inputs) : undefined;
      },
      lens: async (modelPath, inputs) => {
        const model = await modelFor(modelPath);
        return model ? lens(model, inputs) : undefined;
      },
      attentionPanels: () => AttentionPanel.panels().map((p) => ({ runId: p.runId, kind: p.kind })),
      clickHead: async (modelPath, layer, head) => {
        const node = s.explorer.findBlock(modelPath, layer, 'attention', head);
        const command = node?.kind === 'head' ? node.toTreeItem().command : undefined;
        if (!command) throw new Error(`no clickable head ${head} of layer ${layer} in the Layer Explorer`);
        return vscode.commands.executeCommand(command.command, ...(command.arguments ?? []));
      },
    },
  };
}
