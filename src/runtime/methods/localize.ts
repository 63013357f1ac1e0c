/**
 * Cross-attention localization (LocoGen, Basu et al.): which few consecutive cross-attention
 * layers carry an attribute of the conditioning? For every window of `w` consecutive
 * cross-attention layers, those layers compute K and V from the conditioning of a target
 * prompt (C_alt) and all others from the original prompt (C); the window's score is how far
 * the output moves toward the target: p(answer) at the last decoder position for a text
 * output, where the answer defaults to the model's top prediction for the target prompt; for
 * an embedding output, the cosine similarity with the output for the target prompt. The
 * complement (the window keeps C, every other layer gets C_alt) is scored too.
 *
 * Everything runs in one batched pass of one rewritten graph (see instrument/crossAttention.ts):
 * rows = [original everywhere, target everywhere, each window, each complement]. The model is
 * either one graph (the encoder inside, C computed in-graph) or a decoder file reading C as
 * an input plus the encoder file that computes it (optimum's layout).
 *
 * Both prompts must tokenize to the same length (LocoGen uses such pairs): the cross-attention
 * mask is shared by every layer, so it cannot be C's for some layers and C_alt's for others.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { throwIfCancelled } from '../cancel';
import { InputError, intTensor } from '../feeds';
import { cachedGraph } from '../instrument/graphCache';
import { crossDefaults, findCrossAttention, layerMask, rewriteCrossAttention } from '../instrument/crossAttention';
import type { CrossRewrite } from '../instrument/crossAttention';
import type { HookedModel } from '../instrument/hookedModel';
import type { OnnxGraph } from '../onnx/graph';
import type { OnnxModel } from '../onnx/model';
import { onnxType } from '../onnx/proto';
import { fromOrt, openSession, toOrt } from '../session';
import type { OpenSession } from '../session';
import { argmax, asFloat32, cosine, size, softmax } from '../tensor';
import type { HostTensor } from '../tensor';
import type { TextTokenizer } from '../tokenizer';

export interface LocalizeRequest {
  /** The original conditioning text (encoder input). */
  prompt: string;
  /** The alternative conditioning text whose attribute is looked for. */
  targetPrompt: string;
  /** Text the decoder starts from (after its start token); default none. */
  decoderPrompt?: string;
  /** The answer token (as written after the decoder prompt, e.g. " blue"); default: top prediction for the target prompt. */
  answer?: string;
  /** Consecutive cross-attention layers per window (default 3, as LocoGen). */
  window?: number;
  /** The decoder's start token id; default: config.json's decoder_start_token_id, else from the tokenizer. */
  decoderStart?: number;
  /** Rows per session run (default 64). */
  maxBatchRows?: number;
}

export interface LocalizeResult {
  /** Cross-attention layers in order (`blocks.L.cross_attn`). */
  layers: string[];
  /** Their module paths. */
  modules: string[];
  /** Their decoder block indices. */
  blocks: number[];
  window: number;
  /** `probability`: p(answer) at the last decoder position; `cosine`: similarity with the target output. */
  metric: 'probability' | 'cosine';
  /** Per window start: the score with the window on the target conditioning. */
  scores: number[];
  /** Per window start: the score with every layer but the window on the target conditioning. */
  complement: number[];
  best: { start: number; layers: string[] };
  /** Scores with the original (resp. target) conditioning in every layer. */
  baseline: { original: number; target: number };
  answer?: { id: number; text: string };
  /** The top prediction with the original conditioning. */
  originalAnswer?: { id: number; text: string };
  tokens: { original: number[]; target: number[]; decoder: number[] };
}

export interface LocalizeOptions {
  /** The encoder file, when the model is a decoder that reads the conditioning as an input. */
  encoder?: { model: OnnxModel; graph: OnnxGraph };
}

export interface LocalizeProgress {
  report(p: { fraction?: number; message?: string }): void;
}

/** Window starts for `n` layers and windows of `w`. */
export function windowStarts(n: number, w: number): number[] {
  return Array.from({ length: Math.max(0, n - w + 1) }, (_, i) => i);
}

/** Runs the localization sweep. */
export async function localize(hooked: HookedModel, tok: TextTokenizer, req: LocalizeRequest, opts: LocalizeOptions = {}, progress?: LocalizeProgress, signal?: AbortSignal): Promise<LocalizeResult> {
  const { model, graph, arch } = hooked;
  const structure = findCrossAttention(graph, arch);
  const n = structure.layers.length;
  const w = req.window ?? 3;
  if (!Number.isInteger(w) || w < 1) throw new InputError(`the window must be a positive integer, got ${w}`);
  if (w > n) throw new InputError(`the window of ${w} layers is larger than the model's ${n} cross-attention layers`);
  if (structure.conditioningInputs.length > 1) throw new InputError(`the decoder reads ${structure.conditioningInputs.length} conditioning inputs (${structure.conditioningInputs.join(', ')}); localization supports one`);
  const needsEncoder = structure.conditioningInputs.length === 1;
  if (needsEncoder && !opts.encoder) throw new InputError(`this decoder reads its conditioning from the input "${structure.conditioningInputs[0]}": pass the encoder file too (--encoder <encoder.onnx>)`);
  if (!needsEncoder && opts.encoder) throw new InputError('this model computes its conditioning itself (its encoder is in the graph): --encoder is not needed');

  const original = tok.encode(req.prompt);
  const target = tok.encode(req.targetPrompt);
  if (original.length !== target.length) {
    throw new InputError(
      `the prompt has ${original.length} tokens and the target prompt ${target.length}: swapping the conditioning layer by layer needs prompts of equal token length (the cross-attention mask is shared by all layers), as LocoGen's prompt pairs are`,
    );
  }
  const T = original.length;
  const start = req.decoderStart ?? decoderStartToken(model.path, tok);
  const decoder = [start, ...(req.decoderPrompt ? tok.encode(req.decoderPrompt, false) : [])];

  // The rewritten graph (cached on disk beside the other instrumented graphs).
  progress?.report({ message: 'rewriting cross-attention inputs' });
  let rw: CrossRewrite | undefined;
  const make = (): CrossRewrite => rewriteCrossAttention(model, graph, structure);
  const key = JSON.stringify({ localize: 1, layers: structure.layers.map((l) => l.name) });
  const bytes = cachedGraph(hooked.options.cacheDir, model.path, key, () => {
    rw = make();
    return onnxType('ModelProto').encode(rw.proto as never).finish();
  });
  rw ??= make();
  const session = await openSession(bytes, { provider: hooked.options.provider, threads: hooked.options.threads, externalDataFolder: model.dir, weightsOf: model });
  let encSession: OpenSession | undefined;
  try {
    throwIfCancelled(signal);
    // Conditioning of both prompts.
    let condOriginal: HostTensor | undefined;
    let condTarget: HostTensor | undefined;
    if (needsEncoder) {
      progress?.report({ message: 'encoder' });
      const enc = opts.encoder!;
      encSession = await openSession(enc.model.path, { provider: hooked.options.provider, threads: hooked.options.threads, weightsOf: enc.model });
      const feeds = encoderFeeds(enc.graph, [original, target]);
      const out = await encSession.session.run(ortFeeds(feeds), [enc.graph.outputs[0].name]);
      const hidden = fromOrt(out[enc.graph.outputs[0].name]);
      condOriginal = rowOf(hidden, 0);
      condTarget = rowOf(hidden, 1);
    }
    const inputs = new Set(graph.inputs.map((i) => i.name));
    const alt = new Map<string, HostTensor>();
    for (const c of structure.conditioningInputs) alt.set(c, condTarget!);
    const computed = structure.conditioning.filter((c) => !inputs.has(c));
    if (computed.length) {
      // C_alt computed in the graph: one run on the target prompt, conditioning captured.
      progress?.report({ message: 'target conditioning' });
      const feeds = decoderFeeds(graph, structure, 1, target, decoder, condTarget);
      const outs = computed.map((c) => rw!.captured.get(c)!);
      const r = await session.session.run(ortFeeds({ ...crossDefaults(rw), ...feeds }), outs);
      computed.forEach((c, i) => alt.set(c, fromOrt(r[outs[i]])));
    }
    for (const [c, v] of alt) {
      const dims = v.dims;
      if (dims[1] !== T) throw new InputError(`the target conditioning "${c}" has ${dims[1]} positions, the original ${T}`);
    }

    // Rows: none, all, each window, each complement.
    const starts = windowStarts(n, w);
    const rows: boolean[][] = [new Array<boolean>(n).fill(false), new Array<boolean>(n).fill(true)];
    for (const s of starts) rows.push(structure.layers.map((_, i) => i >= s && i < s + w));
    for (const s of starts) rows.push(structure.layers.map((_, i) => !(i >= s && i < s + w)));
    const outName = graph.outputs[0].name;
    const chunk = Math.max(1, Math.round(req.maxBatchRows ?? 64));
    const outputs: Float32Array[] = [];
    let outDims: number[] = [];
    for (let r0 = 0; r0 < rows.length; r0 += chunk) {
      throwIfCancelled(signal);
      const part = rows.slice(r0, r0 + chunk);
      const B = part.length;
      const feeds: Record<string, HostTensor> = { ...crossDefaults(rw), ...decoderFeeds(graph, structure, B, original, decoder, condOriginal) };
      rw.masks.forEach((m, i) => (feeds[m] = layerMask(part.map((row) => row[i]))));
      for (const [c, v] of alt) feeds[rw.alts.get(c)!] = v;
      const out = fromOrt((await session.session.run(ortFeeds(feeds), [outName]))[outName]);
      outDims = out.dims;
      const flat = asFloat32(out);
      const per = size(out.dims.slice(1));
      for (let r = 0; r < B; r++) outputs.push(flat.subarray(r * per, (r + 1) * per));
      progress?.report({ fraction: Math.min(1, (r0 + B) / rows.length), message: `${Math.min(rows.length, r0 + B)} of ${rows.length} layer sets` });
    }

    // Scores: a text output is scored at its last position, an embedding output as a whole.
    const V = outDims[outDims.length - 1];
    const text = outDims.length === 3 && (V === arch.vocabSize || /logits/i.test(outName));
    if (text) for (let r = 0; r < outputs.length; r++) outputs[r] = outputs[r].subarray(outputs[r].length - V);
    let score: (o: Float32Array) => number;
    let answer: LocalizeResult['answer'];
    let originalAnswer: LocalizeResult['originalAnswer'];
    if (text) {
      const id = req.answer !== undefined ? answerToken(tok, req.decoderPrompt ?? '', req.answer) : argmax(outputs[1]);
      if (id >= V) throw new InputError(`the answer token ${id} is outside the model's vocabulary of ${V}`);
      answer = { id, text: tok.decode([id]) };
      const o0 = argmax(outputs[0]);
      originalAnswer = { id: o0, text: tok.decode([o0]) };
      score = (o) => softmax(o)[id];
    } else {
      const ref = outputs[1];
      score = (o) => cosine(o, ref);
    }
    const all = outputs.map(score);
    const k = starts.length;
    const scores = all.slice(2, 2 + k);
    const complement = all.slice(2 + k, 2 + 2 * k);
    let best = 0;
    for (let i = 1; i < k; i++) if (scores[i] > scores[best]) best = i;
    const names = structure.layers.map((l) => l.name);
    return {
      layers: names,
      modules: structure.layers.map((l) => l.path),
      blocks: structure.layers.map((l) => l.block),
      window: w,
      metric: text ? 'probability' : 'cosine',
      scores,
      complement,
      best: { start: best, layers: names.slice(best, best + w) },
      baseline: { original: all[0], target: all[1] },
      answer,
      originalAnswer,
      tokens: { original, target, decoder },
    };
  } finally {
    await session.session.release();
    await encSession?.session.release();
  }
}

/**
 * The decoder's start token: `decoder_start_token_id` of a config.json beside the model, else
 * the tokenizer's `</s>` when it also has `<s>` (BART), else its `<pad>` (T5).
 */
export function decoderStartToken(modelFile: string, tok: TextTokenizer): number {
  for (const dir of [path.dirname(modelFile), path.dirname(path.dirname(modelFile))]) {
    const f = path.join(dir, 'config.json');
    if (!fs.existsSync(f)) continue;
    try {
      const cfg = JSON.parse(fs.readFileSync(f, 'utf8')) as { decoder_start_token_id?: number };
      if (typeof cfg.decoder_start_token_id === 'number') return cfg.decoder_start_token_id;
    } catch {
      // unreadable config: fall through to the tokenizer
    }
  }
  const single = (s: string): number | undefined => {
    const ids = tok.encode(s, false);
    return ids.length === 1 && tok.decode(ids) === s ? ids[0] : undefined;
  };
  const eos = single('</s>');
  if (eos !== undefined && single('<s>') !== undefined) return eos;
  const pad = single('<pad>');
  if (pad !== undefined) return pad;
  throw new InputError('cannot tell the decoder start token (no config.json with decoder_start_token_id beside the model): pass --decoder-start <id>');
}

/**
 * The answer's first token as the decoder writes it after `decoderPrompt`. Without a leading
 * space the answer is also tried with one (`blue` after `colour:` is ` blue`), and the token
 * that spells the answer is preferred.
 */
export function answerToken(tok: TextTokenizer, decoderPrompt: string, answer: string): number {
  const first = (a: string): number | undefined => {
    const p = tok.encode(decoderPrompt, false);
    const full = tok.encode(decoderPrompt + a, false);
    let i = 0;
    while (i < p.length && i < full.length && p[i] === full[i]) i++;
    if (i >= full.length) return undefined;
    if (i < p.length) return tok.encode(a, false)[0];
    return full[i];
  };
  const literal = first(answer);
  if (!/^\s/.test(answer) && decoderPrompt !== '' && !/\s$/.test(decoderPrompt)) {
    const spaced = first(` ${answer}`);
    const spells = (id: number | undefined): boolean => id !== undefined && tok.decode([id]).trim() !== '' && answer.startsWith(tok.decode([id]).trim());
    if (spaced !== undefined && spells(spaced) && (!spells(literal) || tok.decode([spaced]).trim().length > tok.decode([literal!]).trim().length)) return spaced;
  }
  if (literal === undefined) throw new InputError(`the answer "${answer}" adds no token after the decoder prompt`);
  return literal;
}

/** Feeds of an encoder file: token ids and an all-ones mask (rows of equal length). */
function encoderFeeds(graph: OnnxGraph, rows: number[][]): Record<string, HostTensor> {
  const B = rows.length;
  const S = rows[0].length;
  const feeds: Record<string, HostTensor> = {};
  for (const { name } of graph.inputs) {
    if (/attention_mask|input_mask/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * S).fill(1), [B, S]);
    else if (/ids$/.test(name) && !/position|type/.test(name)) feeds[name] = intTensor(graph, name, rows.flat(), [B, S]);
    else if (/token_type_ids/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * S).fill(0), [B, S]);
    else throw new InputError(`the encoder needs input "${name}", which Mechanist cannot fill for a text prompt`);
  }
  return feeds;
}

/**
 * Feeds of the (rewritten) decoder or whole model for B identical rows: encoder ids, decoder
 * ids, all-ones masks, and the conditioning input (repeated per row) when it is one.
 */
function decoderFeeds(graph: OnnxGraph, s: ReturnType<typeof findCrossAttention>, B: number, encIds: number[], decIds: number[], cond: HostTensor | undefined): Record<string, HostTensor> {
  const T = encIds.length;
  const D = decIds.length;
  const rep = (ids: number[]): number[] => Array.from({ length: B }, () => ids).flat();
  const feeds: Record<string, HostTensor> = {};
  for (const { name } of graph.inputs) {
    if (name.startsWith('mechanist.')) continue;
    if (name === s.decoderIds || name === 'decoder_input_ids') feeds[name] = intTensor(graph, name, rep(decIds), [B, D]);
    else if (s.conditioningInputs.includes(name)) feeds[name] = repeatRows(cond!, B);
    else if (/decoder_attention_mask/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * D).fill(1), [B, D]);
    else if (/attention_mask|input_mask/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * T).fill(1), [B, T]);
    else if (/ids$/.test(name) && !/position|type/.test(name)) feeds[name] = intTensor(graph, name, rep(encIds), [B, T]);
    else if (/token_type_ids/.test(name)) feeds[name] = intTensor(graph, name, new Array(B * T).fill(0), [B, T]);
    else throw new InputError(`the model needs input "${name}", which Mechanist cannot fill (KV-cache exports: use the decoder without past_key_values)`);
  }
  return feeds;
}

function ortFeeds(feeds: Record<string, HostTensor>): Record<string, ReturnType<typeof toOrt>> {
  const out: Record<string, ReturnType<typeof toOrt>> = {};
  for (const [k, v] of Object.entries(feeds)) out[k] = toOrt(v);
  return out;
}

/** Row r of a [B, ...] tensor as [1, ...]. */
function rowOf(t: HostTensor, r: number): HostTensor {
  const n = size(t.dims.slice(1));
  const Ctor = t.data.constructor as new (x: ArrayLike<number>) => HostTensor['data'];
  return { type: t.type, data: new Ctor((t.data as Float32Array).subarray(r * n, (r + 1) * n)), dims: [1, ...t.dims.slice(1)] };
}

/** A [1, ...] tensor repeated to [B, ...]. */
function repeatRows(t: HostTensor, B: number): HostTensor {
  const n = size(t.dims.slice(1));
  const Ctor = t.data.constructor as new (len: number) => Float32Array;
  const data = new Ctor(B * n);
  for (let r = 0; r < B; r++) data.set((t.data as Float32Array).subarray(0, n), r * n);
  return { type: t.type, data: data as HostTensor['data'], dims: [B, ...t.dims.slice(1)] };
}


