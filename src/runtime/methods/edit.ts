/**
 * Closed-form concept editing (Diff-QuickFix, LocoEdit, MultEdit): make a model treat a source
 * concept like a target concept by a data-free ridge-regression update of one linear weight,
 * localised (optionally by a causal trace), verified (before/after on the edited prompts and on
 * unrelated ones) and never destructive (a new file; the original's bytes are not touched).
 *
 * Keys: the linear layer's inputs at the source concept's last token (and, with
 * `last-and-after`, every later token) over prompt templates; values: the same layer applied to
 * the inputs at the matching tokens of the templates filled with the target. The update itself
 * is `closedFormUpdate` (closedForm.ts). On an encoder-decoder (one graph, or a decoder file with
 * its encoder file) the templates are encoder prompts and the edited weights are cross-attention
 * K/V projections: their keys are the conditioning at the concept's tokens, as LocoEdit edits
 * text-to-image cross-attention; what is checked is the decoder's next token.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { linearOfNode } from '../architecture/linear';
import { ModuleIndex } from '../architecture/modules';
import type { LinearInfo } from '../architecture/types';
import { throwIfCancelled } from '../cancel';
import { InputError, intTensor, textFeeds } from '../feeds';
import { findCrossAttention } from '../instrument/crossAttention';
import type { CrossStructure } from '../instrument/crossAttention';
import type { HookedModel, PreparedSession } from '../instrument/hookedModel';
import type { OnnxGraph } from '../onnx/graph';
import { floatToHalf } from '../onnx/float16';
import { ModelError, OnnxModel, confinedPath, writeFileAtomic } from '../onnx/model';
import { onnxType } from '../onnx/proto';
import { DataType, dataTypeName } from '../onnx/types';
import type { GraphProto, ModelProto, TensorProto } from '../onnx/types';
import { fromOrt, openSession, toOrt } from '../session';
import type { OpenSession } from '../session';
import { argmax, asFloat32, cosine, softmax } from '../tensor';
import type { HostTensor } from '../tensor';
import type { TextTokenizer } from '../tokenizer';
import { causalTrace } from './causalTrace';
import { closedFormUpdate } from './closedForm';
import { decoderStartToken, localize as localizeCross } from './localize';

export type KeyPositions = 'last' | 'last-and-after';

/** Default templates for text encoders (Diff-QuickFix's). */
export const ENCODER_TEMPLATES = ['{}', 'a photo of {}', 'an image of {}', 'a picture of {}'];

export interface EditRequest {
  /**
   * `blocks.L.mlp` (MLP output projection), `blocks.L.attn` (attention output), `blocks.L.attn.q|k|v|o|qkv`,
   * `blocks.L.mlp.in`, `blocks.L.cross_attn.k|v` (`.kv`: both), a weight initializer name, or `auto`;
   * several, separated by commas, are edited together (see `conceptEdit`).
   */
  layer: string;
  source: string;
  target: string;
  /** Prompt templates with `{}` for the concept (default for text encoders: ENCODER_TEMPLATES; required for language models and encoder-decoders). */
  templates?: string[];
  lambda?: number;
  positions?: KeyPositions;
  /** Prompts to check that other behaviour is kept (default: the templates filled with the target). */
  unrelated?: string[];
  /** Weight mu of the preservation term from the keys (every token) of `preserve` prompts; 0 (default): none. */
  preserveWeight?: number;
  /** Prompts whose keys the preservation term keeps (default: `unrelated`). */
  preserve?: string[];
  /** The new model file (never the original). */
  out: string;
  /** Top predictions reported per prompt (language models, encoder-decoders), default 5. */
  top?: number;
  /**
   * `--layer auto`: on a language model, noise samples and window of the causal trace (defaults 10
   * and 1); on an encoder-decoder, `window` is the number of consecutive cross-attention layers
   * LocoGen's localization scores (default 3, or all of them when there are fewer).
   */
  trace?: { samples?: number; window?: number; seed?: number };
  /** Encoder-decoders: the text the decoder starts from after its start token (e.g. `colour:`); default none. */
  decoderPrompt?: string;
  /** Encoder-decoders: the decoder's start token; default config.json's decoder_start_token_id, else from the tokenizer. */
  decoderStart?: number;
  backend?: 'auto' | 'js' | 'ort';
}

/** What `conceptEdit` needs besides the model. */
export interface EditOptions {
  /** The encoder file, when the model is a decoder that reads the conditioning (`encoder_hidden_states`) as an input. */
  encoder?: { model: OnnxModel; graph: OnnxGraph };
}

export interface Prediction {
  id: number;
  text: string;
  p: number;
}

export interface LmEditedReport {
  prompts: { prompt: string; top: Prediction[]; expected: { id: number; text: string }; pExpected: number; hit: boolean }[];
  /** Prompts whose top-1 is the target's top-1 on the same template. */
  hits: number;
  rate: number;
}

export interface EncoderEditedReport {
  /** cosine of each edited prompt's embedding to the original model's source and target embeddings of the same template. */
  prompts: { prompt: string; toSource: number; toTarget: number; closerToTarget: boolean }[];
  closer: number;
  rate: number;
  meanToTarget: number;
}

export type PreservationReport =
  | { prompts: { prompt: string; before: Prediction[]; after: Prediction[]; kept: boolean }[]; kept: number; rate: number; kind: 'language-model' }
  | { prompts: { prompt: string; cosine: number; shift: number }[]; minCosine: number; maxShift: number; kind: 'encoder' };

/** One edited weight of an edit. */
export interface EditedWeight {
  weight: string;
  /** The hook-style name of its layer (`blocks.3.mlp`, `blocks.2.cross_attn.k`), or the weight's module path. */
  layer: string;
  node: string;
  weightShape: [number, number];
  layout: 'out-in' | 'in-out';
  dtype: string;
  /** Frobenius norms of W and of W' - W. */
  norms: { weight: number; delta: number };
  /** Wall time of its closed-form update. */
  seconds: number;
}

export interface EditResult {
  /** The edited initializer (several: their names joined by ", "; see `weights`). */
  weight: string;
  /** The hook-style name of the layer (`blocks.3.mlp`), or the weight's module path (several: joined by ", "; see `layers`). */
  layer: string;
  /** Every edited initializer, in order. */
  weights: string[];
  /** Their layers, in order. */
  layers: string[];
  /** Per weight: shape, norms, time. */
  edits: EditedWeight[];
  node: string;
  /** Number of key vectors (rows of K) per weight. */
  keys: number;
  /** Wall time of the edit proper: keys, update, write (not localisation or evaluation). */
  seconds: number;
  /** `encoder-decoder`: keys from the encoder prompt, predictions of the decoder after `decoderPrompt`. */
  kind: 'language-model' | 'encoder' | 'encoder-decoder';
  source: string;
  target: string;
  templates: string[];
  lambda: number;
  positions: KeyPositions;
  preserveWeight: number;
  out: string;
  /** Every file written (the model, a new data file, copied data files). */
  files: string[];
  /** Of the first weight (see `edits` for each). */
  weightShape: [number, number];
  layout: 'out-in' | 'in-out';
  dtype: string;
  backend: 'js' | 'ort';
  /** Frobenius norms of W and of W' - W (over every edited weight). */
  norms: { weight: number; delta: number };
  localisation?: { method: 'causal-trace' | 'fixed' | 'cross-attention'; layer: number; layers?: string[]; scores?: number[]; note: string };
  /** Encoder-decoders: the decoder's prompt and the ids it was fed ([start, ...prompt]). */
  decoder?: { prompt: string; ids: number[]; encoder?: string };
  timings: { localise: number; keys: number; update: number; write: number; evaluate: number };
  before: LmEditedReport | EncoderEditedReport;
  after: LmEditedReport | EncoderEditedReport;
  preservation: PreservationReport;
  notes: string[];
}

export interface EditProgress {
  report(p: { fraction?: number; message?: string }): void;
}

/** A resolved edit site. */
export interface EditSite {
  name: string;
  linear: LinearInfo;
  block?: number;
}

/** True when the model has a next-token head (a causal language model). */
export function isLanguageModel(hooked: Pick<HookedModel, 'arch'>): boolean {
  return !!hooked.arch.unembedding && hooked.arch.hookPoints.some((h) => h.name === 'ln_final.hook_normalized');
}

/** Resolves `--layer` (hook-style name, weight initializer name or module path) to a linear layer. */
export function resolveLayer(hooked: Pick<HookedModel, 'arch' | 'graph'>, layer: string): EditSite {
  const { arch, graph } = hooked;
  const m = /^blocks\.(\d+)\.(mlp|attn|cross_attn)(?:\.(q|k|v|o|qkv|in|out|hook_\w+))?$/.exec(layer) ?? /^blocks\.(\d+)\.hook_(mlp|attn)_out$/.exec(layer);
  if (m) {
    const L = Number(m[1]);
    const b = arch.blocks[L];
    if (!b) throw new InputError(`the model has blocks 0..${arch.blocks.length - 1}; there is no block ${L}`);
    const part = m[3] ?? (m[2] === 'mlp' ? 'out' : 'o');
    let lin: LinearInfo | undefined;
    if (m[2] === 'mlp') lin = part === 'in' ? b.mlp?.in[0] : part === 'out' ? b.mlp?.out : undefined;
    else {
      const att = m[2] === 'attn' ? b.attention : b.crossAttention;
      lin = att?.[part as 'q' | 'k' | 'v' | 'o' | 'qkv'];
      if (!lin && att?.qkv && ['q', 'k', 'v'].includes(part)) {
        throw new InputError(`block ${L}'s attention has a fused q/k/v projection (${att.qkv.weight}); edit blocks.${L}.${m[2]}.qkv or name the weight`);
      }
    }
    if (!lin) throw new InputError(`block ${L} has no linear layer for "${layer}" (found: ${linearsOf(hooked).filter((x) => x.block === L).map((x) => x.name).join(', ') || 'none'})`);
    return { name: layer.replace(/\.hook_(mlp|attn)_out$/, '.$1'), linear: lin, block: L };
  }
  const all = linearsOf(hooked);
  const hit = all.find((x) => x.linear.weight === layer || x.linear.path === layer);
  if (hit) return hit;
  // Any MatMul/Gemm whose constant operand is this initializer.
  if (graph.initializers.has(layer)) {
    const idx = new ModuleIndex(graph as HookedModel['graph']);
    for (const n of graph.nodes) {
      const lin = linearOfNode(idx, n, graph.name(n));
      if (lin?.weight === layer) return { name: lin.path, linear: lin };
    }
    throw new InputError(`initializer "${layer}" is not the weight of a MatMul/Gemm (a 2-D linear layer), so it cannot be edited in closed form`);
  }
  throw new InputError(`no layer or weight named "${layer}"; use blocks.L.mlp, blocks.L.attn, blocks.L.attn.q|k|v, a weight initializer name or auto`);
}

function linearsOf(hooked: Pick<HookedModel, 'arch'>): EditSite[] {
  const out: EditSite[] = [];
  for (const b of hooked.arch.blocks) {
    const add = (name: string, l?: LinearInfo): void => {
      if (l) out.push({ name: `blocks.${b.index}.${name}`, linear: l, block: b.index });
    };
    for (const [prefix, att] of [['attn', b.attention], ['cross_attn', b.crossAttention]] as const) {
      if (!att) continue;
      add(prefix, att.o);
      add(`${prefix}.q`, att.q);
      add(`${prefix}.k`, att.k);
      add(`${prefix}.v`, att.v);
      add(`${prefix}.qkv`, att.qkv);
    }
    add('mlp', b.mlp?.out);
    b.mlp?.in.forEach((l, i) => add(i === 0 ? 'mlp.in' : `mlp.in${i}`, l));
  }
  return out;
}

/** Fills a template's `{}` (the first one) with a concept. */
export function fill(template: string, concept: string): string {
  if (!template.includes('{}')) throw new InputError(`template "${template}" has no {} for the concept`);
  return template.replace('{}', concept);
}

/** True when some block has cross-attention: an encoder-decoder in one graph, or a decoder exported apart. */
export function isEncoderDecoder(hooked: Pick<HookedModel, 'arch'>): boolean {
  return hooked.arch.blocks.some((b) => !!b.crossAttention);
}

/**
 * Resolves a comma-separated `--layer` to its edit sites, in order; `blocks.L.cross_attn.kv` (or
 * `blocks.L.attn.kv`) stands for the K and the V projection. `auto` must stand alone.
 */
export function resolveLayers(hooked: Pick<HookedModel, 'arch' | 'graph'>, spec: string): EditSite[] {
  const names = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .flatMap((n) => {
      const m = /^(blocks\.\d+\.(?:cross_attn|attn))\.kv$/.exec(n);
      return m ? [`${m[1]}.k`, `${m[1]}.v`] : [n];
    });
  if (!names.length) throw new InputError('no layer given');
  if (names.length > 1 && names.includes('auto')) throw new InputError('auto chooses the layers itself: give it alone, not in a list');
  const sites = names.map((n) => resolveLayer(hooked, n));
  const seen = new Map<string, string>();
  for (const s of sites) {
    const prev = seen.get(s.linear.weight);
    if (prev) throw new InputError(`${prev} and ${s.name} are the same weight (${s.linear.weight}); name it once`);
    seen.set(s.linear.weight, s.name);
  }
  return sites;
}

/** The layers `auto` edits on an encoder-decoder and how they were found. */
export interface CrossLocalisation {
  /** Window start among the cross-attention layers, and the K and V sites of its layers. */
  start: number;
  layers: string[];
  blocks: number[];
  /** Mean p(answer) per window start over the templates used. */
  scores: number[];
  /** Templates whose source and target prompts have equal token length (the others cannot be swapped layer by layer). */
  used: string[];
  window: number;
}

/**
 * `--layer auto` for an encoder-decoder, as LocoEdit localises before editing: LocoGen's sweep
 * (see localize.ts) with each template filled with the source as the original conditioning and
 * with the target as the alternative one; the window of `window` consecutive cross-attention
 * layers with the highest mean p(target's answer) wins.
 */
export async function localizeCrossAttention(
  hooked: HookedModel,
  tok: TextTokenizer,
  source: string,
  target: string,
  templates: string[],
  opts: { window?: number; decoderPrompt?: string; decoderStart?: number; encoder?: EditOptions['encoder'] } = {},
  signal?: AbortSignal,
): Promise<CrossLocalisation> {
  // LocoGen's window of 3, or every layer of a model with fewer.
  const window = opts.window ?? Math.min(3, findCrossAttention(hooked.graph, hooked.arch).layers.length);
  let sum: number[] | undefined;
  let names: string[] = [];
  let blocks: number[] = [];
  const used: string[] = [];
  for (const t of templates) {
    throwIfCancelled(signal);
    const prompt = fill(t, source);
    const targetPrompt = fill(t, target);
    if (tok.encode(prompt).length !== tok.encode(targetPrompt).length) continue;
    const r = await localizeCross(hooked, tok, { prompt, targetPrompt, decoderPrompt: opts.decoderPrompt, decoderStart: opts.decoderStart, window }, { encoder: opts.encoder }, undefined, signal);
    sum ??= new Array<number>(r.scores.length).fill(0);
    r.scores.forEach((s, i) => (sum![i] += s));
    names = r.layers;
    blocks = r.blocks;
    used.push(t);
  }
  if (!sum) {
    throw new InputError(
      `--layer auto localises by swapping the conditioning layer by layer, which needs the source and target prompts of a template to have equal token length; "${source}" and "${target}" differ in every template: name the layers (e.g. blocks.2.cross_attn.kv)`,
    );
  }
  const scores = sum.map((s) => s / used.length);
  let start = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[start]) start = i;
  return { start, layers: names.slice(start, start + window), blocks: blocks.slice(start, start + window), scores, used, window };
}


/**
 * `--layer auto` for a language model: causal traces (kind mlp, window 1 by default, Gaussian
 * noise on the subject) of each template filled with the source; the block whose MLP output has
 * the highest mean indirect effect (restored p(answer) - corrupted p(answer)) at the source's last
 * token wins, as LocoEdit localises before editing.
 */
export async function localize(
  hooked: HookedModel,
  tok: TextTokenizer,
  source: string,
  templates: string[],
  opts: { samples?: number; window?: number; seed?: number } = {},
  signal?: AbortSignal,
): Promise<{ layer: number; scores: number[] }> {
  if (!isLanguageModel(hooked)) throw new InputError('--layer auto traces next-token probabilities and needs a causal language model');
  const L = hooked.arch.layers;
  const sum = new Array<number>(L).fill(0);
  for (const t of templates) {
    throwIfCancelled(signal);
    const prompt = fill(t, source);
    const [r] = await causalTrace(hooked, tok, {
      prompt,
      subject: source,
      corruption: { type: 'noise', samples: opts.samples ?? 10, seed: opts.seed ?? 1 },
      kinds: ['mlp'],
      window: opts.window ?? 1,
    });
    const last = r.subjectRange[1] - 1;
    for (let l = 0; l < L; l++) sum[l] += r.scores[l][last] - r.lowScore;
  }
  const scores = sum.map((s) => s / templates.length);
  let best = 0;
  for (let l = 1; l < L; l++) if (scores[l] > scores[best]) best = l;
  return { layer: best, scores };
}

interface Probe {
  prompt: string;
  /** The tokens the keys are read from (an encoder-decoder's encoder prompt). */
  ids: number[];
  /** Key positions wanted. */
  positions: number[];
  /** Also every position's key (preservation). */
  allKeys?: boolean;
}

interface ProbeResult {
  /** Per key hook: the keys at `positions` (rows of its width). */
  keys: Map<string, Float64Array>;
  allKeys: Map<string, Float64Array>;
  /** Last-position logits (language model, decoder) or the embedding (encoder). */
  last: Float32Array;
}

/** Groups probes by length into batches of equal-length rows. */
function batches<T extends { ids: number[] }>(items: T[], max = 32): number[][] {
  const byLen = new Map<number, number[]>();
  items.forEach((p, i) => {
    const list = byLen.get(p.ids.length) ?? [];
    list.push(i);
    byLen.set(p.ids.length, list);
  });
  const out: number[][] = [];
  for (const list of byLen.values()) for (let i = 0; i < list.length; i += max) out.push(list.slice(i, i + max));
  return out;
}

/** The embedding output of a text encoder: a pooled/projected one when there is one, else the first. */
function embeddingOutput(hooked: HookedModel): string {
  const outs = hooked.graph.outputs.map((o) => o.name);
  return outs.find((n) => /embeds|pooler|pooled/i.test(n)) ?? outs[0];
}

/** Embedding (encoder) or last logits (LM, decoder) row b of a model output. */
function lastRow(t: HostTensor, b: number): Float32Array {
  const v = asFloat32(t);
  const D = t.dims[t.dims.length - 1];
  if (t.dims.length === 2) return v.subarray(b * D, (b + 1) * D);
  const S = t.dims[1];
  return v.subarray((b * S + S - 1) * D, (b * S + S) * D);
}

/**
 * Feeds of an encoder-decoder (one graph) or of a decoder file: each row's encoder ids, the same
 * decoder ids in every row, all-ones masks, and the conditioning `cond` [B, T, d] when the graph
 * reads it as an input.
 */
function encDecFeeds(graph: OnnxGraph, s: CrossStructure, rows: number[][], decIds: number[], cond: HostTensor | undefined): Record<string, HostTensor> {
  const B = rows.length;
  const T = rows[0].length;
  const D = decIds.length;
  const feeds: Record<string, HostTensor> = {};
  for (const { name } of graph.inputs) {
    if (name === s.decoderIds || name === 'decoder_input_ids') feeds[name] = intTensor(graph, name, Array.from({ length: B }, () => decIds).flat(), [B, D]);
    else if (s.conditioningInputs.includes(name)) feeds[name] = cond!;
    else if (/decoder_attention_mask/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * D).fill(1), [B, D]);
    else if (/attention_mask|input_mask/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * T).fill(1), [B, T]);
    else if (/ids$/.test(name) && !/position|type/.test(name)) feeds[name] = intTensor(graph, name, rows.flat(), [B, T]);
    else if (/token_type_ids/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * T).fill(0), [B, T]);
    else throw new InputError(`the model needs input "${name}", which Mechanist cannot fill (KV-cache exports: use the decoder without past_key_values)`);
  }
  return feeds;
}

/** How the model is fed and read: text in, last logits or embedding out. */
interface Feeder {
  feeds(rows: number[][]): Promise<Record<string, HostTensor>>;
  /** The output read (logits or embedding). */
  output: string;
  release(): Promise<void>;
}

/**
 * A feeder for `graph`: plain text feeds, or for an encoder-decoder the encoder prompt, the decoder
 * ids and, for a decoder file, the conditioning computed by the (never edited) encoder file.
 */
async function feeder(hooked: HookedModel, graph: OnnxGraph, encdec: { structure: CrossStructure; decoder: number[]; encoder?: EditOptions['encoder'] } | undefined, output: string): Promise<Feeder> {
  if (!encdec) return { feeds: async (rows) => textFeeds(graph, rows), output, release: async () => undefined };
  const { structure, decoder, encoder } = encdec;
  let enc: OpenSession | undefined;
  if (structure.conditioningInputs.length) enc = await openSession(encoder!.model.path, { provider: hooked.options.provider, threads: hooked.options.threads, weightsOf: encoder!.model });
  return {
    output,
    async feeds(rows) {
      let cond: HostTensor | undefined;
      if (enc) {
        const out = encoder!.graph.outputs[0].name;
        const r = await enc.session.run(ortFeeds(textFeeds(encoder!.graph, rows)), [out]);
        cond = fromOrt(r[out]);
      }
      return encDecFeeds(graph, structure, rows, decoder, cond);
    },
    release: async () => enc?.session.release(),
  };
}

function ortFeeds(feeds: Record<string, HostTensor>): Record<string, ReturnType<typeof toOrt>> {
  return Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)]));
}

/** Runs the original model on the probes: keys of every hook (captured, or fed when a hook is a graph input) and the last output row. */
async function runOriginal(session: PreparedSession, feed: Feeder, hooks: Map<string, number>, inputs: Set<string>, probes: Probe[], lastLogits: boolean): Promise<ProbeResult[]> {
  const res = new Array<ProbeResult>(probes.length);
  const captured = [...hooks.keys()].filter((h) => !inputs.has(h));
  for (const group of batches(probes)) {
    const S = probes[group[0]].ids.length;
    const feeds = await feed.feeds(group.map((i) => probes[i].ids));
    const r = await session.run(feeds, { fetch: captured, outputs: lastLogits ? [] : [feed.output] });
    const out = lastLogits ? r.lastLogits! : r.outputs[feed.output];
    group.forEach((i) => (res[i] = { keys: new Map(), allKeys: new Map(), last: new Float32Array(0) }));
    for (const [hook, dIn] of hooks) {
      const kt = r.cache.get(hook) ?? feeds[hook];
      const kv = asFloat32(kt);
      if (kv.length !== group.length * S * dIn) throw new InputError(`the layer's input ${hook} has shape [${kt.dims.join(', ')}], not ${group.length} x ${S} tokens x ${dIn} features`);
      group.forEach((i, b) => {
        const p = probes[i];
        const keys = new Float64Array(p.positions.length * dIn);
        p.positions.forEach((pos, j) => keys.set(kv.subarray((b * S + pos) * dIn, (b * S + pos + 1) * dIn), j * dIn));
        res[i].keys.set(hook, keys);
        if (p.allKeys) res[i].allKeys.set(hook, Float64Array.from(kv.subarray(b * S * dIn, (b + 1) * S * dIn)));
      });
    }
    group.forEach((i, b) => (res[i].last = Float32Array.from(lastRow(out, b))));
  }
  return res;
}

async function runEdited(open: OpenSession, feed: Feeder, probes: Probe[]): Promise<Float32Array[]> {
  const res = new Array<Float32Array>(probes.length);
  for (const group of batches(probes)) {
    const feeds = await feed.feeds(group.map((i) => probes[i].ids));
    const out = fromOrt((await open.session.run(ortFeeds(feeds), [feed.output]))[feed.output]);
    group.forEach((i, b) => (res[i] = Float32Array.from(lastRow(out, b))));
  }
  return res;
}

function topK(logits: Float32Array, k: number, tok: TextTokenizer): Prediction[] {
  const p = softmax(logits);
  const idx = Array.from(p.keys()).sort((a, b) => p[b] - p[a]).slice(0, k);
  return idx.map((id) => ({ id, text: tok.decode([id]), p: p[id] }));
}



function relShift(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] * b[i];
  }
  return Math.sqrt(d / n);
}

/** The key positions of a filled template: the concept's last token, and every later one with `last-and-after`. */
function keyPositions(tok: TextTokenizer, ids: number[], concept: string, positions: KeyPositions): number[] {
  const last = conceptLastToken(tok, ids, concept);
  return positions === 'last' ? [last] : Array.from({ length: ids.length - last }, (_, i) => last + i);
}

/**
 * The index of the concept's last token in `ids`: by decoded text (as causal tracing finds a
 * subject), or, for tokenizers whose per-token decoding drops word boundaries (CLIP's `</w>`), as
 * the concept's own token ids inside the prompt's.
 */
export function conceptLastToken(tok: TextTokenizer, ids: number[], concept: string): number {
  try {
    return tok.findSpan(ids, concept)[1] - 1;
  } catch (e) {
    for (const form of [concept, ` ${concept}`]) {
      const sub = tok.encode(form, false);
      if (!sub.length) continue;
      for (let i = 0; i + sub.length <= ids.length; i++) {
        if (sub.every((x, j) => ids[i + j] === x)) return i + sub.length - 1;
      }
    }
    throw e;
  }
}

/** Runs the whole edit: localise (auto), keys, update, write, evaluate. */
/** Whether `value` is computed from graph input `input` (through any op). */
function dependsOn(graph: OnnxGraph, value: string, input: string): boolean {
  const seen = new Set([value]);
  const queue = [value];
  while (queue.length) {
    const v = queue.pop()!;
    if (v === input) return true;
    for (const i of graph.producer.get(v)?.input ?? []) {
      if (i && !seen.has(i)) {
        seen.add(i);
        queue.push(i);
      }
    }
  }
  return false;
}

/**
 * Runs the whole edit: localise (auto), keys, update, write, evaluate.
 *
 * Several layers (`blocks.2.cross_attn.kv,blocks.3.cross_attn.kv`, or `auto` on an
 * encoder-decoder) are edited together into one new file, each weight by its own closed-form
 * update from the original model's keys, as LocoEdit edits every K/V projection of a localised
 * window. For cross-attention K/V the keys are the conditioning, which no decoder weight changes,
 * so this equals editing them one after another; for layers of one stream (two MLPs of a language
 * model) a later layer's keys are taken before the earlier edit, not after it.
 *
 * On an encoder-decoder the keys are read at the concept's tokens of the encoder prompt (the
 * templates are encoder prompts), so the edited weights must read the encoder's output: a
 * cross-attention K or V projection (whose inputs are the conditioning, LocoEdit's keys), or an
 * encoder weight of a one-graph model. What is verified is the decoder's next token after
 * `decoderPrompt`, for the edited and the unrelated prompts.
 */
export async function conceptEdit(hooked: HookedModel, tok: TextTokenizer, req: EditRequest, progress?: EditProgress, signal?: AbortSignal, opts: EditOptions = {}): Promise<EditResult> {
  const notes: string[] = [];
  const graph = hooked.graph;
  const cross = isEncoderDecoder(hooked) ? findCrossAttention(graph, hooked.arch) : undefined;
  const lm = !cross && isLanguageModel(hooked);
  const kind: EditResult['kind'] = cross ? 'encoder-decoder' : lm ? 'language-model' : 'encoder';
  const predicts = kind !== 'encoder';
  const lambda = req.lambda ?? 0.01;
  if (!(lambda > 0) || !Number.isFinite(lambda)) throw new InputError(`lambda must be a positive number (got ${req.lambda})`);
  const positions = req.positions ?? 'last';
  if (!['last', 'last-and-after'].includes(positions)) throw new InputError(`positions must be last or last-and-after (got ${positions})`);
  if (!req.source || !req.target) throw new InputError('give both a source and a target concept');
  if (req.source === req.target) throw new InputError('the source and target concepts are the same');
  const templates = req.templates?.length ? req.templates : kind === 'encoder' ? ENCODER_TEMPLATES : undefined;
  if (!templates) {
    throw new InputError(
      cross
        ? 'an encoder-decoder needs prompt templates for its encoder (one per line with {} for the concept, e.g. "the big ball is {}")'
        : 'a language model needs relation templates (one per line with {} for the subject, e.g. "{} lives in the city of")',
    );
  }
  templates.forEach((t) => fill(t, req.source));
  const mu = req.preserveWeight ?? 0;
  if (!(mu >= 0)) throw new InputError(`the preservation weight must be >= 0 (got ${mu})`);
  const outAbs = path.resolve(req.out);
  if (hooked.model.path && outAbs === hooked.model.path) throw new ModelError(`refusing to overwrite the original model ${outAbs}; choose a new file name`);
  if (cross?.conditioningInputs.length && !opts.encoder) throw new InputError(`this decoder reads its conditioning from the input "${cross.conditioningInputs[0]}": pass the encoder file too (--encoder <encoder.onnx>)`);
  if (cross && !cross.conditioningInputs.length && opts.encoder) throw new InputError('this model computes its conditioning itself (its encoder is in the graph): --encoder is not needed');
  if (!cross && opts.encoder) throw new InputError('--encoder is for a decoder exported apart (one that reads encoder_hidden_states); this model has no cross-attention');
  if (!cross && (req.decoderPrompt || req.decoderStart !== undefined)) throw new InputError('a decoder prompt is for encoder-decoders; this model has no cross-attention');
  const decoderIds = cross ? [req.decoderStart ?? decoderStartToken(hooked.model.path, tok), ...(req.decoderPrompt ? tok.encode(req.decoderPrompt, false) : [])] : undefined;

  // Where.
  const tLoc = performance.now();
  let localisation: EditResult['localisation'];
  let layerSpec = req.layer;
  if (req.layer === 'auto') {
    if (cross) {
      progress?.report({ message: `localising: cross-attention windows over ${templates.length} prompt pairs` });
      const loc = await localizeCrossAttention(hooked, tok, req.source, req.target, templates, { window: req.trace?.window, decoderPrompt: req.decoderPrompt, decoderStart: req.decoderStart, encoder: opts.encoder }, signal);
      layerSpec = loc.layers.map((l) => `${l}.kv`).join(',');
      localisation = {
        method: 'cross-attention',
        layer: loc.blocks[0],
        layers: loc.layers,
        scores: loc.scores,
        note: `LocoGen: window of ${loc.window} cross-attention layers fed the target's conditioning with the highest mean p(target's answer), over ${loc.used.length} of ${templates.length} templates (start ${loc.start}: ${loc.layers.join(', ')}); their K and V projections are edited`,
      };
      if (loc.used.length < templates.length) notes.push(`${templates.length - loc.used.length} templates were left out of the localisation: their source and target prompts differ in token length`);
    } else if (lm) {
      progress?.report({ message: `localising: causal traces of ${templates.length} prompts` });
      const loc = await localize(hooked, tok, req.source, templates, req.trace, signal);
      layerSpec = `blocks.${loc.layer}.mlp`;
      localisation = { method: 'causal-trace', layer: loc.layer, scores: loc.scores, note: `MLP indirect effect at the source's last token, mean over ${templates.length} templates (window ${req.trace?.window ?? 1}, ${req.trace?.samples ?? 10} noise samples)` };
    } else {
      layerSpec = 'blocks.0.attn';
      localisation = { method: 'fixed', layer: 0, note: 'a text encoder has no next-token probability to trace; auto picks the first self-attention output projection, where Diff-QuickFix localises concepts in CLIP text encoders' };
    }
  }
  const sites = resolveLayers(hooked, layerSpec);
  const timeLocalise = (performance.now() - tLoc) / 1000;
  throwIfCancelled(signal);

  interface Site {
    site: EditSite;
    layout: 'out-in' | 'in-out';
    hook: string;
    tensor: TensorProto;
  }
  const crossNodes = new Set(cross?.layers.flatMap((l) => l.reads.map((r) => graph.name(r.node))) ?? []);
  const inputNames = new Set(graph.inputs.map((i) => i.name));
  const plan: Site[] = sites.map((site) => {
    const lin = site.linear;
    const node = graph.nodeByName.get(lin.node)!;
    let layout: 'out-in' | 'in-out' = lin.transposed ? 'out-in' : 'in-out';
    if (node.op_type === 'Gemm' && graph.attrInt(node, 'transA', 0) === 1) throw new InputError(`${lin.node} is a Gemm with transA=1; editing it is not supported`);
    if (node.op_type === 'FusedMatMul') {
      if (graph.attrInt(node, 'transA', 0) === 1) throw new InputError(`${lin.node} is a FusedMatMul with transA=1; editing it is not supported`);
      if (graph.attrInt(node, 'transB', 0) === 1) layout = layout === 'out-in' ? 'in-out' : 'out-in';
    }
    const hook = node.input[0];
    // On an encoder-decoder the keys sit at the concept's tokens of the encoder prompt: a weight
    // reading the decoder's own tokens has no such keys.
    if (cross && !crossNodes.has(lin.node) && !inputNames.has(hook) && cross.decoderIds && dependsOn(graph, hook, cross.decoderIds)) {
      throw new InputError(
        `${site.name} (${lin.weight}) reads the decoder's own tokens, but on an encoder-decoder the keys are the concept's tokens in the encoder prompt: edit a cross-attention K or V projection (blocks.L.cross_attn.k|v|kv, or auto), as LocoEdit does, or an encoder weight`,
      );
    }
    const users = graph.consumers.get(lin.weight)?.length ?? 0;
    if (users > 1) notes.push(`the weight ${lin.weight} is read by ${users} nodes (tied weights?); all of them see the edit`);
    return { site, layout, hook, tensor: graph.initializers.get(lin.weight)! };
  });
  // Every weight is solved from the original model's keys: say so where an edited weight feeds another's keys.
  for (const later of plan) {
    for (const earlier of plan) {
      const out = graph.nodeByName.get(earlier.site.linear.node)?.output[0];
      if (earlier !== later && out && dependsOn(graph, later.hook, out)) {
        notes.push(`the keys of ${later.site.name} are read from the original model; ${earlier.site.name}, edited too, lies upstream of them, so they differ after the edit (edit one layer at a time to chain edits)`);
      }
    }
  }
  const hooks = new Map<string, number>();
  for (const p of plan) {
    const prev = hooks.get(p.hook);
    if (prev !== undefined && prev !== p.site.linear.inFeatures) throw new InputError(`${p.hook} is read with ${prev} and ${p.site.linear.inFeatures} features`);
    hooks.set(p.hook, p.site.linear.inFeatures);
  }

  // Keys (and the "before" numbers) from one instrumented session of the original.
  const t0 = performance.now();
  progress?.report({ message: 'collecting keys' });
  const outName = predicts ? graph.outputs[0].name : embeddingOutput(hooked);
  const session = await hooked.prepare({ capture: [...hooks.keys()].filter((h) => !inputNames.has(h)), lastTokenLogits: lm });
  const encdec = cross && { structure: cross, decoder: decoderIds!, encoder: opts.encoder };
  const feedOriginal = await feeder(hooked, graph, encdec, outName);
  const unrelated = req.unrelated?.length ? req.unrelated : templates.map((t) => fill(t, req.target));
  if (!req.unrelated?.length) notes.push('no unrelated prompts given: preservation is measured on the templates filled with the target');
  const mk = (prompt: string, concept?: string, all = false): Probe => {
    const ids = tok.encode(prompt);
    return { prompt, ids, positions: concept ? keyPositions(tok, ids, concept, positions) : [], allKeys: all };
  };
  const srcProbes = templates.map((t) => mk(fill(t, req.source), req.source));
  const tgtProbes = templates.map((t) => mk(fill(t, req.target), req.target));
  const unrProbes = unrelated.map((p) => mk(p));
  const presProbes = mu > 0 ? (req.preserve?.length ? req.preserve : unrelated).map((p) => mk(p, undefined, true)) : [];
  let orig: ProbeResult[];
  try {
    orig = await runOriginal(session, feedOriginal, hooks, inputNames, [...srcProbes, ...tgtProbes, ...unrProbes, ...presProbes], lm);
  } finally {
    await feedOriginal.release();
  }
  const srcRes = orig.slice(0, templates.length);
  const tgtRes = orig.slice(templates.length, 2 * templates.length);
  const unrRes = orig.slice(2 * templates.length, 2 * templates.length + unrProbes.length);
  const presRes = orig.slice(2 * templates.length + unrProbes.length);
  const pairs = templates.map((t, i) => {
    const ns = srcProbes[i].positions.length;
    const nt = tgtProbes[i].positions.length;
    if (ns !== nt) notes.push(`template "${t}": ${ns} key positions for the source but ${nt} for the target; the first ${Math.min(ns, nt)} are paired`);
    return Math.min(ns, nt);
  });
  const keysOf = (hook: string, dIn: number): { K: Float64Array; Kt: Float64Array; U?: Float64Array } => {
    const K: number[] = [];
    const Kt: number[] = [];
    srcRes.forEach((s, i) => {
      K.push(...s.keys.get(hook)!.subarray(0, pairs[i] * dIn));
      Kt.push(...tgtRes[i].keys.get(hook)!.subarray(0, pairs[i] * dIn));
    });
    const U = mu > 0 ? Float64Array.from(presRes.flatMap((r) => Array.from(r.allKeys.get(hook)!))) : undefined;
    return { K: Float64Array.from(K), Kt: Float64Array.from(Kt), U };
  };
  const timeKeys = (performance.now() - t0) / 1000;
  throwIfCancelled(signal);

  // The updates, one per weight.
  const values = new Map<string, Float32Array>();
  const edits: EditedWeight[] = [];
  let nKeys = 0;
  let backend: 'js' | 'ort' = 'js';
  let timeUpdate = 0;
  for (const p of plan) {
    throwIfCancelled(signal);
    const lin = p.site.linear;
    const { K, Kt, U } = keysOf(p.hook, lin.inFeatures);
    progress?.report({ message: `solving for ${lin.weight} (${K.length / lin.inFeatures} keys)` });
    const W = hooked.model.tensorFloat32(p.tensor);
    const upd = await closedFormUpdate({
      weight: W,
      outFeatures: lin.outFeatures,
      inFeatures: lin.inFeatures,
      layout: p.layout,
      keys: K,
      targetKeys: Kt,
      lambda,
      preserve: U ? { keys: U, weight: mu } : undefined,
      backend: req.backend,
    });
    let nw = 0;
    let nd = 0;
    for (let i = 0; i < W.length; i++) {
      nw += W[i] * W[i];
      nd += (upd.weight[i] - W[i]) ** 2;
    }
    values.set(lin.weight, upd.weight);
    nKeys = upd.keys;
    backend = upd.backend;
    timeUpdate += upd.seconds;
    edits.push({
      weight: lin.weight,
      layer: p.site.name,
      node: lin.node,
      weightShape: p.layout === 'out-in' ? [lin.outFeatures, lin.inFeatures] : [lin.inFeatures, lin.outFeatures],
      layout: p.layout,
      dtype: dataTypeName(p.tensor.data_type),
      norms: { weight: Math.sqrt(nw), delta: Math.sqrt(nd) },
      seconds: upd.seconds,
    });
  }

  // The new file.
  const t2 = performance.now();
  progress?.report({ message: `writing ${outAbs}` });
  const files = writeEditedModel(hooked.model, values, outAbs);
  const timeWrite = (performance.now() - t2) / 1000;
  const seconds = timeKeys + timeUpdate + timeWrite;
  throwIfCancelled(signal);

  // Verification on the edited model.
  const t3 = performance.now();
  progress?.report({ message: 'evaluating the edited model' });
  const edited = await openSession(outAbs, { provider: hooked.options.provider, threads: hooked.options.threads, weightsOf: hooked.model });
  let after: Float32Array[];
  const feedEdited = await feeder(hooked, graph, encdec, outName);
  try {
    after = await runEdited(edited, feedEdited, [...srcProbes, ...unrProbes]);
  } finally {
    await feedEdited.release();
    await edited.session.release();
  }
  const srcAfter = after.slice(0, templates.length);
  const unrAfter = after.slice(templates.length);
  const k = req.top ?? 5;
  let before: EditResult['before'];
  let afterRep: EditResult['after'];
  let preservation: PreservationReport;
  if (predicts) {
    const report = (lasts: Float32Array[]): LmEditedReport => {
      const prompts = lasts.map((l, i) => {
        const eid = argmax(tgtRes[i].last);
        const top = topK(l, k, tok);
        return { prompt: srcProbes[i].prompt, top, expected: { id: eid, text: tok.decode([eid]) }, pExpected: softmax(l)[eid], hit: top[0].id === eid };
      });
      const hits = prompts.filter((p) => p.hit).length;
      return { prompts, hits, rate: hits / prompts.length };
    };
    before = report(srcRes.map((r) => r.last));
    afterRep = report(srcAfter);
    const prompts = unrProbes.map((p, i) => {
      const b = topK(unrRes[i].last, k, tok);
      const a = topK(unrAfter[i], k, tok);
      return { prompt: p.prompt, before: b, after: a, kept: a[0].id === b[0].id };
    });
    const kept = prompts.filter((p) => p.kept).length;
    preservation = { kind: 'language-model', prompts, kept, rate: kept / Math.max(1, prompts.length) };
  } else {
    const report = (embs: Float32Array[]): EncoderEditedReport => {
      const prompts = embs.map((e, i) => {
        const toSource = cosine(e, srcRes[i].last);
        const toTarget = cosine(e, tgtRes[i].last);
        return { prompt: srcProbes[i].prompt, toSource, toTarget, closerToTarget: toTarget > toSource };
      });
      const closer = prompts.filter((p) => p.closerToTarget).length;
      return { prompts, closer, rate: closer / prompts.length, meanToTarget: prompts.reduce((s, p) => s + p.toTarget, 0) / prompts.length };
    };
    before = report(srcRes.map((r) => r.last));
    afterRep = report(srcAfter);
    const prompts = unrProbes.map((p, i) => ({ prompt: p.prompt, cosine: cosine(unrAfter[i], unrRes[i].last), shift: relShift(unrAfter[i], unrRes[i].last) }));
    preservation = {
      kind: 'encoder',
      prompts,
      minCosine: Math.min(...prompts.map((p) => p.cosine)),
      maxShift: Math.max(...prompts.map((p) => p.shift)),
    };
  }
  const timeEval = (performance.now() - t3) / 1000;
  const first = edits[0];
  const sq = (f: (e: EditedWeight) => number): number => Math.sqrt(edits.reduce((s, e) => s + f(e) ** 2, 0));

  return {
    weight: edits.map((e) => e.weight).join(', '),
    layer: edits.map((e) => e.layer).join(', '),
    weights: edits.map((e) => e.weight),
    layers: edits.map((e) => e.layer),
    edits,
    node: first.node,
    keys: nKeys,
    seconds,
    kind,
    source: req.source,
    target: req.target,
    templates,
    lambda,
    positions,
    preserveWeight: mu,
    out: outAbs,
    files,
    weightShape: first.weightShape,
    layout: first.layout,
    dtype: first.dtype,
    backend,
    norms: { weight: sq((e) => e.norms.weight), delta: sq((e) => e.norms.delta) },
    localisation,
    decoder: decoderIds && { prompt: req.decoderPrompt ?? '', ids: decoderIds, encoder: opts.encoder?.model.path },
    timings: { localise: timeLocalise, keys: timeKeys, update: timeUpdate, write: timeWrite, evaluate: timeEval },
    before,
    after: afterRep,
    preservation,
    notes,
  };
}

// ---------------------------------------------------------------------------------------------
// Writing the edited checkpoint.

/** float32 values -> the raw little-endian bytes of an ONNX tensor of `dataType`. */
export function encodeValues(values: Float32Array, dataType: number, name = 'tensor'): Uint8Array {
  switch (dataType) {
    case DataType.FLOAT:
      return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
    case DataType.DOUBLE:
      return new Uint8Array(Float64Array.from(values).buffer);
    case DataType.FLOAT16:
      return new Uint8Array(Uint16Array.from(values, floatToHalf).buffer);
    case DataType.BFLOAT16: {
      const u = new Uint32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
      const out = new Uint16Array(values.length);
      for (let i = 0; i < u.length; i++) {
        const x = u[i];
        out[i] = (x & 0x7f800000) === 0x7f800000 && x & 0x7fffff ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
      }
      return new Uint8Array(out.buffer);
    }
    default:
      throw new ModelError(`tensor ${name}: cannot write edited values as ${dataTypeName(dataType)}`);
  }
}

/** A copy of a protobufjs message object with some fields replaced (prototype kept, so encoding is unchanged). */
function withFields<T extends object>(obj: T, fields: Partial<T>): T {
  return Object.assign(Object.create(Object.getPrototypeOf(obj) as object) as T, obj, fields);
}

const EXTERNAL = 1;

function visitTensors(g: GraphProto, f: (t: TensorProto) => void): void {
  for (const t of g.initializer) f(t);
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.t) f(a.t);
      for (const t of a.tensors ?? []) f(t);
      if (a.g) visitTensors(a.g, f);
      for (const sub of a.graphs) visitTensors(sub, f);
    }
  }
}

/**
 * Writes `model` with each initializer of `edits` replaced by its values (float32, converted to
 * the tensor's type) to `out`, atomically, never touching the original's files. Inline weights
 * are replaced in a shallow copy of the ModelProto. With external data, the (small) proto is
 * copied; edited tensors that were external go to one new data file `<out>.data`; the other
 * tensors keep reading the original data files when `out` is in the same folder (they are only
 * read), else those files are copied beside `out`. Returns the files written; on failure nothing
 * partial is left.
 */
export function writeEditedModel(model: OnnxModel, edits: ReadonlyMap<string, Float32Array>, out: string): string[] {
  const abs = path.resolve(out);
  if (model.path && abs === model.path) throw new ModelError(`refusing to overwrite the original model ${abs}; choose a new file name`);
  const originals = new Set(model.externalFiles());
  if (originals.has(abs)) throw new ModelError(`refusing to write over ${abs}, a data file of the original model`);
  if (!edits.size) throw new ModelError('no weight to write');
  const bytes = new Map<string, Uint8Array>();
  for (const [weight, values] of edits) {
    const t = model.graph.initializer.find((x) => x.name === weight);
    if (!t) throw new ModelError(`the model has no initializer ${weight}`);
    if (OnnxModel.elementCount(t) !== values.length) throw new ModelError(`tensor ${weight} has ${OnnxModel.elementCount(t)} values, the edit ${values.length}`);
    bytes.set(weight, encodeValues(values, t.data_type, weight));
  }
  const folder = path.dirname(abs);
  let isDir = false;
  try {
    isDir = fs.statSync(folder).isDirectory();
  } catch {
    /* reported below */
  }
  if (!isDir) throw new ModelError(`cannot write ${abs}: the folder ${folder} does not exist or is not a folder`);
  const T = onnxType('ModelProto');
  const inline = (x: TensorProto, b: Uint8Array): TensorProto =>
    withFields(x, { raw_data: b, float_data: [], double_data: [], int32_data: [], int64_data: [], uint64_data: [], external_data: [], data_location: 0 });

  if (!model.hasExternalData) {
    const graph = withFields(model.graph, { initializer: model.graph.initializer.map((x) => (bytes.has(x.name) ? inline(x, bytes.get(x.name)!) : x)) });
    const proto = withFields(model.proto, { graph });
    writeFileAtomic(abs, model.withInlineWeights(() => T.encode(proto as never).finish()));
    return [abs];
  }

  const copy = T.decode(model.encode()) as unknown as ModelProto;
  const outDir = path.dirname(abs);
  const base = path.basename(abs);
  const sameDir = outDir === path.resolve(model.dir);
  const created: string[] = [];
  try {
    const external = new Set([...bytes.keys()].filter((w) => model.externalRef(model.graph.initializer.find((x) => x.name === w)!)));
    const remap = new Map<string, string>();
    const used = new Set<string>();
    visitTensors(copy.graph!, (x) => {
      if (x.data_location !== EXTERNAL || (external.has(x.name) && copy.graph!.initializer.includes(x))) return;
      const loc = x.external_data.find((e) => e.key === 'location')?.value;
      if (!loc || sameDir) return;
      let to = remap.get(loc);
      if (!to) {
        let name = `${base}.${path.basename(loc)}`;
        for (let i = 1; used.has(name) || path.join(outDir, name) === abs; i++) name = `${base}.${i}.${path.basename(loc)}`;
        used.add(name);
        const dest = path.join(outDir, name);
        if (originals.has(dest)) throw new ModelError(`refusing to write over ${dest}, a data file of the original model`);
        copyFileAtomic(confinedPath(model.dir, loc, x.name), dest);
        created.push(dest);
        remap.set(loc, (to = name));
      }
      for (const e of x.external_data) if (e.key === 'location') e.value = to;
    });
    if (external.size) {
      // The edited external tensors, one after another (64-byte aligned) in one new data file.
      const dataName = `${base}.data`;
      const dataFile = path.join(outDir, dataName);
      if (originals.has(dataFile)) throw new ModelError(`refusing to write over ${dataFile}, a data file of the original model; choose another output name`);
      const at = new Map<string, number>();
      let size = 0;
      for (const w of external) {
        at.set(w, size);
        size = Math.ceil((size + bytes.get(w)!.length) / 64) * 64;
      }
      const data = new Uint8Array(size);
      for (const w of external) data.set(bytes.get(w)!, at.get(w)!);
      writeFileAtomic(dataFile, data);
      created.push(dataFile);
      for (const w of external) {
        const edited = copy.graph!.initializer.find((x) => x.name === w)!;
        edited.raw_data = new Uint8Array(0);
        edited.data_location = EXTERNAL;
        edited.external_data = [
          { key: 'location', value: dataName },
          { key: 'offset', value: String(at.get(w)!) },
          { key: 'length', value: String(bytes.get(w)!.length) },
        ] as TensorProto['external_data'];
      }
    }
    for (const w of bytes.keys()) {
      if (external.has(w)) continue;
      const edited = copy.graph!.initializer.find((x) => x.name === w)!;
      Object.assign(edited, { raw_data: bytes.get(w)!, float_data: [], double_data: [], int32_data: [], external_data: [], data_location: 0 });
    }
    writeFileAtomic(abs, T.encode(copy as never).finish());
  } catch (e) {
    for (const f of created) fs.rmSync(f, { force: true });
    throw e;
  }
  return [abs, ...created];
}

function copyFileAtomic(from: string, to: string): void {
  const tmp = `${to}.${process.pid}.${Date.now()}.tmp`;
  try {
    fs.copyFileSync(from, tmp, fs.constants.COPYFILE_FICLONE);
    fs.renameSync(tmp, to);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* nothing was created */
    }
    throw new ModelError(`cannot copy ${from} to ${to}: ${(e as Error).message}`);
  }
}
