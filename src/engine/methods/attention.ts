/** Engine methods of attention analysis: per-head patterns, knockout sweeps, head contributions, and the logit lens. */
import { throwIfCancelled } from '../../runtime/cancel';
import { InputError } from '../../runtime/feeds';
import { attentionContributions, attentionKnockout, attentionPatterns } from '../../runtime/methods/attention';
import type { KnockoutResult, KnockoutSources, PromptTokens } from '../../runtime/methods/attention';
import { logitLens } from '../../runtime/methods/logitLens';
import type { LensResult } from '../../runtime/methods/logitLens';
import type { EngineState, HandlersOf } from './state';

/** The softmax attention of every head of one layer. */
export interface PatternsOutput {
  tokens: PromptTokens;
  layer: number;
  /** patterns[head][query][key]. */
  patterns: number[][][];
}

/** One row of a knockout sweep: the sources blocked together and p(answer) per layer window. */
export interface KnockoutRow {
  /** Source positions blocked in this row. */
  sources: number[];
  /** Per layer l: p(answer) with the window around l blocked. */
  p: number[];
  /** Per layer l: (p - baseline) / baseline. */
  relativeChange: number[];
}

/** Knockout of the whole source set, then of each source token alone (same prompt, answer and window). */
export interface KnockoutSweep {
  tokens: PromptTokens;
  answer: { id: number; text: string };
  /** The blocked query position (the last token by default). */
  from: number;
  window: number;
  /** Clean p(answer). */
  baseline: number;
  /** Per layer l: the blocked layers [lo, hi). */
  windows: [number, number][];
  /** rows[0]: every source; then one row per source token (when there are several). */
  rows: KnockoutRow[];
}

/** Norms of each head's (and each source token's) contribution to one position's residual stream. */
export interface ContributionsOutput {
  tokens: PromptTokens;
  position: number;
  /** heads[layer][head]. */
  heads: number[][];
  /** bySource[layer][head][source]. */
  bySource: number[][][];
  /** || b_O || per layer. */
  outputBiasNorm: number[];
}

export interface AttentionMethods {
  /** Attention patterns of every head of one layer (one run). */
  attentionPatterns: { params: { id: string; prompt: string; layer: number }; result: PatternsOutput };
  /** Attention knockout (Geva et al.) of the source set and of each source token, over a window around every layer. */
  attentionKnockout: {
    params: { id: string; prompt: string; target?: string; sources: KnockoutSources; window: number; from?: number; perSource?: boolean };
    result: KnockoutSweep;
  };
  /** Per-head and per-(head, source) contribution norms to a position (default: the last). */
  headContributions: { params: { id: string; prompt: string; position?: number }; result: ContributionsOutput };
  /** The logit lens: top-k tokens and p(answer) per layer and position. */
  logitLens: { params: { id: string; prompt: string; target?: string; topK?: number }; result: LensResult };
}

export function attentionHandlers(state: EngineState): HandlersOf<AttentionMethods> {
  return {
    async attentionPatterns({ id, prompt, layer }) {
      const m = state.get(id);
      const r = await attentionPatterns(m.hooked, state.tokenizer(m), { prompt, layers: [layer] });
      state.noteProvider(m.hooked);
      return { tokens: r.tokens, layer, patterns: r.layers[0].patterns };
    },

    async attentionKnockout(params, { progress, signal }) {
      const m = state.get(params.id);
      const tok = state.tokenizer(m);
      const base = { prompt: params.prompt, target: params.target, from: params.from, window: params.window, maxBatchRows: state.settings.maxBatchRows };
      progress.report({ fraction: 0, message: 'all sources' });
      const all = await attentionKnockout(m.hooked, tok, { ...base, sources: params.sources }, signal);
      state.noteProvider(m.hooked);
      if (!all.sources.length) throw new InputError('no source tokens to block');
      const results: KnockoutResult[] = [all];
      const singles = params.perSource === false || all.sources.length < 2 ? [] : all.sources;
      for (const [i, s] of singles.entries()) {
        throwIfCancelled(signal);
        progress.report({ fraction: (i + 1) / (singles.length + 1), message: `source ${i + 1} of ${singles.length}: ${JSON.stringify(all.tokens.strings[s])}` });
        results.push(await attentionKnockout(m.hooked, tok, { ...base, sources: { type: 'positions', positions: [s] } }, signal));
      }
      progress.report({ fraction: 1 });
      return {
        tokens: all.tokens,
        answer: all.answer,
        from: all.from,
        window: all.window,
        baseline: all.baseline,
        windows: all.layers.map((l) => l.layers),
        rows: results.map((r) => ({ sources: r.sources, p: r.layers.map((l) => l.p), relativeChange: r.relativeChange })),
      };
    },

    async headContributions({ id, prompt, position }, { signal }) {
      const m = state.get(id);
      const r = await attentionContributions(m.hooked, state.tokenizer(m), { prompt, position }, signal);
      state.noteProvider(m.hooked);
      return { tokens: r.tokens, position: r.position, heads: r.heads, bySource: r.bySource, outputBiasNorm: r.outputBiasNorm };
    },

    async logitLens({ id, prompt, target, topK }, { signal }) {
      const m = state.get(id);
      const r = await logitLens(m.hooked, state.tokenizer(m), { prompt, target, topK }, signal);
      state.noteProvider(m.hooked);
      return r;
    },
  };
}
