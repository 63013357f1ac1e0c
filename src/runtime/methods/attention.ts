/**
 * Attention methods over a HookedModel:
 * - patterns: the softmax attention of every head of a layer (`blocks.L.attn.hook_pattern`);
 * - knockout (Geva et al. 2023, "Dissecting recall of factual associations"): block the edges
 *   from a target position to source positions in every head of a window of layers, by adding
 *   the dtype's minimum to those scores before the softmax; report per layer the relative
 *   change of p(answer). The whole sweep is one batched run (every row masks its own window);
 * - contributions: the norm of each head's, and each (head, source token)'s, contribution to
 *   the target position's residual stream, computed on the host in float64 from captured
 *   activations and the projection weights.
 * Head-level methods need an unfused attention (a Softmax to hook); fused kernels are refused.
 */
import { throwIfCancelled } from '../cancel';
import { InputError, textFeeds } from '../feeds';
import type { HookedModel } from '../instrument/hookedModel';
import { knockoutMask } from '../instrument/knockout';
import type { BlockedEdges } from '../instrument/knockout';
import type { AttentionInfo } from '../architecture/types';
import { argmax, asFloat32, softmax } from '../tensor';
import type { HostTensor } from '../tensor';
import type { TextTokenizer } from '../tokenizer';
import { windowLayers } from './window';
import { maxPositions } from './positions';
import { initializerValues, valueProjection, weightInOut } from './weights';

/** Tokens of a prompt as ids and strings. */
export interface PromptTokens {
  ids: number[];
  strings: string[];
}

/** The attention module of layer `l`, or an InputError saying why head-level methods cannot run. */
export function headAttention(hooked: Pick<HookedModel, 'arch'>, l: number): AttentionInfo {
  const { arch } = hooked;
  if (arch.family === 'unknown' || arch.layers === 0) throw new InputError('attention methods need a recognised transformer (no blocks were found in this model)');
  if (!Number.isInteger(l) || l < 0 || l >= arch.layers) throw new InputError(`layer ${l} does not exist: the model has layers 0..${arch.layers - 1}`);
  const a = arch.blocks[l].attention;
  if (!a) throw new InputError(`block ${l} has no self-attention that discovery could find`);
  if (a.fused) {
    throw new InputError(
      `block ${l}'s attention is a fused ${a.fused} op, which computes its softmax internally: per-head patterns, knockout and contributions need an unfused export (e.g. torch.onnx.export / optimum without onnxruntime's attention fusion)`,
    );
  }
  if (!a.softmax) throw new InputError(`block ${l}'s attention has no Softmax node to hook (per-head methods need the attention pattern)`);
  return a;
}

/** Every layer's attention, checked for head-level methods. */
function allHeadAttention(hooked: Pick<HookedModel, 'arch'>): AttentionInfo[] {
  if (hooked.arch.family === 'unknown' || hooked.arch.layers === 0 || !hooked.arch.blocks.length) throw new InputError('attention methods need a recognised transformer (no blocks were found in this model)');
  return hooked.arch.blocks.map((_, l) => headAttention(hooked, l));
}

/** Encodes a prompt and checks its length against the model's positions. */
export function promptTokens(hooked: HookedModel, tok: TextTokenizer, prompt: string): PromptTokens {
  const ids = tok.encode(prompt);
  if (!ids.length) throw new InputError('the prompt encodes to no tokens');
  const limit = maxPositions(hooked);
  if (limit !== undefined && ids.length > limit) throw new InputError(`the prompt has ${ids.length} tokens but the model accepts at most ${limit}`);
  return { ids, strings: tok.tokenStrings(ids) };
}

/** The pattern hook of layer `l`. */
export function patternHook(l: number): string {
  return `blocks.${l}.attn.hook_pattern`;
}

/** Reads a captured pattern [1, heads, query, key] as nested arrays, checking its shape. */
function patternArrays(t: HostTensor, heads: number, seq: number, layer: number): number[][][] {
  const d = t.dims;
  if (d.length !== 4 || d[0] !== 1 || d[1] !== heads || d[2] !== seq || d[3] !== seq) {
    throw new InputError(`block ${layer}'s attention pattern has shape [${d.join(', ')}], expected [1, ${heads}, ${seq}, ${seq}] (batch, heads, query, key)`);
  }
  const v = asFloat32(t);
  return Array.from({ length: heads }, (_, h) => Array.from({ length: seq }, (_, q) => Array.from(v.subarray((h * seq + q) * seq, (h * seq + q + 1) * seq))));
}

// --------------------------------------------------------------------------- patterns

export interface PatternsRequest {
  prompt: string;
  /** Layers to report (default all). */
  layers?: number[];
}

export interface PatternsResult {
  tokens: PromptTokens;
  /** Per requested layer: patterns[head][query][key] (query heads for grouped-KV models). */
  layers: { layer: number; patterns: number[][][] }[];
}

/** Softmax attention of every head of the requested layers, from one run. */
export async function attentionPatterns(hooked: HookedModel, tok: TextTokenizer, req: PatternsRequest): Promise<PatternsResult> {
  const layers = req.layers ?? hooked.arch.blocks.map((_, l) => l);
  const atts = layers.map((l) => headAttention(hooked, l));
  const tokens = promptTokens(hooked, tok, req.prompt);
  const hooks = layers.map(patternHook);
  const session = await hooked.prepare({ capture: hooks });
  const out = await session.run(textFeeds(hooked.graph, [tokens.ids]), { fetch: hooks });
  return {
    tokens,
    layers: layers.map((l, i) => ({ layer: l, patterns: patternArrays(out.cache.get(hooks[i])!, atts[i].heads, tokens.ids.length, l) })),
  };
}

// --------------------------------------------------------------------------- knockout

/** Which source positions lose their edge to the target. */
export type KnockoutSources = { type: 'subject'; subject: string } | { type: 'span'; start: number; end: number } | { type: 'positions'; positions: number[] };

export interface KnockoutRequest {
  prompt: string;
  /** The answer as a continuation of the prompt; default: the clean top-1 token. */
  target?: string;
  sources: KnockoutSources;
  /** The query position whose edges are blocked (default: the last token; negative counts from the end). */
  from?: number;
  /** Layers blocked around each layer l: [l - k/2, l + k - k/2) clipped (default 9). */
  window?: number;
  /** Rows per session run (default 64). */
  maxBatchRows?: number;
}

export interface KnockoutResult {
  tokens: PromptTokens;
  answer: { id: number; text: string };
  /** The blocked query position. */
  from: number;
  /** Blocked source positions. */
  sources: number[];
  window: number;
  /** Clean p(answer) at the last position. */
  baseline: number;
  /** Per layer l: the layers blocked [lo, hi), p(answer) knocked, and (p - baseline) / baseline. */
  layers: { layer: number; layers: [number, number]; p: number }[];
  relativeChange: number[];
}

/** Resolves a (possibly negative) position against a sequence length. */
export function resolvePosition(p: number | undefined, seq: number, what: string): number {
  const v = p === undefined ? seq - 1 : p < 0 ? seq + p : p;
  if (!Number.isInteger(v) || v < 0 || v >= seq) throw new InputError(`${what} ${p} is outside the prompt's ${seq} tokens`);
  return v;
}

/** Knocks out the target's edges to the sources over a window around every layer; one batched sweep. */
export async function attentionKnockout(hooked: HookedModel, tok: TextTokenizer, req: KnockoutRequest, signal?: AbortSignal): Promise<KnockoutResult> {
  const atts = allHeadAttention(hooked);
  const L = atts.length;
  const tokens = promptTokens(hooked, tok, req.prompt);
  const S = tokens.ids.length;
  const from = resolvePosition(req.from, S, 'the target position');
  let sources: number[];
  switch (req.sources.type) {
    case 'subject': {
      const [a, b] = tok.findSpan(tokens.ids, req.sources.subject);
      sources = range(a, b);
      break;
    }
    case 'span':
      sources = range(req.sources.start, req.sources.end);
      break;
    default:
      sources = req.sources.positions;
  }
  sources = [...new Set(sources)].sort((a, b) => a - b);
  for (const s of sources) if (!Number.isInteger(s) || s < 0 || s >= S) throw new InputError(`source position ${s} is outside the prompt's ${S} tokens`);
  // A causal model lets the target see 0..from; blocking all of them leaves a softmax over nothing.
  if (sources.filter((s) => s <= from).length === from + 1) throw new InputError(`blocking every position 0..${from} leaves position ${from} nothing to attend to`);
  const window = Math.max(1, Math.round(req.window ?? 9));

  const hooks = atts.map((_, l) => patternHook(l));
  // Layer 0's pattern is fetched too, to check that the scores are [batch, heads, query, key]
  // (what a [batch, 1, query, key] mask broadcasts against).
  const session = await hooked.prepare({ knockout: hooks, lastTokenLogits: true, capture: [hooks[0]] });
  const elemTypes = hooks.map((h) => session.scoreMaskType(h));
  throwIfCancelled(signal);

  // Row 0: clean (zero masks); row 1 + l: the window around l blocked.
  const jobs = [-1, ...range(0, L)];
  const perRun = Math.max(2, Math.round(req.maxBatchRows ?? 64));
  const probs = new Map<number, Float64Array>();
  for (let j0 = 0; j0 < jobs.length; j0 += perRun) {
    throwIfCancelled(signal);
    const batch = jobs.slice(j0, j0 + perRun);
    const masks: Record<string, HostTensor> = {};
    for (let j = 0; j < L; j++) {
      const edges: BlockedEdges[] = [];
      batch.forEach((l, r) => {
        if (l >= 0 && sources.length && windowLayers(l, window, L).includes(j)) edges.push({ row: r, query: from, keys: sources });
      });
      if (edges.length) masks[hooks[j]] = knockoutMask(edges, batch.length, S, elemTypes[j]);
    }
    const out = await session.run(textFeeds(hooked.graph, batch.map(() => tokens.ids)), { scoreMasks: masks, fetch: [hooks[0]] });
    const pd = out.cache.get(hooks[0])!.dims;
    if (pd.length !== 4 || pd[0] !== batch.length || pd[1] !== atts[0].heads || pd[2] !== S || pd[3] !== S) {
      throw new InputError(`block 0's attention scores have shape [${pd.join(', ')}], not [batch, heads, query, key]: knockout masks cannot be applied to this export`);
    }
    const logits = asFloat32(out.lastLogits!);
    const V = logits.length / batch.length;
    batch.forEach((l, r) => probs.set(l, softmax(logits.subarray(r * V, (r + 1) * V))));
  }
  const clean = probs.get(-1)!;
  const answerId = req.target !== undefined ? tok.continuationToken(req.prompt, req.target) : argmax(clean);
  const baseline = clean[answerId];
  const layers = range(0, L).map((l) => {
    const w = windowLayers(l, window, L);
    return { layer: l, layers: [w[0], w[w.length - 1] + 1] as [number, number], p: probs.get(l)![answerId] };
  });
  return {
    tokens,
    answer: { id: answerId, text: tok.decode([answerId]) },
    from,
    sources,
    window,
    baseline,
    layers,
    relativeChange: layers.map((x) => (x.p - baseline) / baseline),
  };
}

// --------------------------------------------------------------------------- contributions

export interface ContributionsRequest {
  prompt: string;
  /** Target position (default: the last; negative counts from the end). */
  position?: number;
  /** Also return the contribution vectors [layer][head][source][d] and output biases (large). */
  vectors?: boolean;
}

export interface ContributionsResult {
  tokens: PromptTokens;
  position: number;
  /** heads[layer][head]: || sum_j contribution(head, j) ||. */
  heads: number[][];
  /** bySource[layer][head][source]: || A[h][t][j] (x_j W_V^h + b_V^h) W_O^h ||. */
  bySource: number[][][];
  /** || b_O || per layer (0 without an output bias). */
  outputBiasNorm: number[];
  /** Largest |sum of contributions + b_O - captured attention output| per layer (a self-check). */
  maxError: number[];
  /** With `vectors`: vectors[layer][head][source] (d values each). */
  vectors?: Float64Array[][][];
  /** With `vectors`: the output bias per layer (zeros without one). */
  outputBias?: Float64Array[];
  /** With `vectors`: the captured attention output at the position, per layer. */
  attnOut?: Float64Array[];
}

/** Per-head and per-(head, source) contributions to the residual stream at a position, every layer. */
export async function attentionContributions(hooked: HookedModel, tok: TextTokenizer, req: ContributionsRequest, signal?: AbortSignal): Promise<ContributionsResult> {
  const atts = allHeadAttention(hooked);
  const tokens = promptTokens(hooked, tok, req.prompt);
  const S = tokens.ids.length;
  const t = resolvePosition(req.position, S, 'position');
  const projections = atts.map((a, l) => {
    if (!a.o) throw new InputError(`block ${l}'s attention has no output projection that discovery could find`);
    return { v: valueProjection(hooked, a, l), o: a.o };
  });
  // The value projection's input (the attention's input after the block's norm), by raw name.
  const vInputs = projections.map((p) => hooked.graph.nodeByName.get(p.v.lin.node)!.input[0]);
  const attnOut = atts.map((_, l) => `blocks.${l}.hook_attn_out`);
  const patterns = atts.map((_, l) => patternHook(l));
  const capture = [...patterns, ...vInputs, ...attnOut.filter((h) => hooked.arch.hookPoints.some((p) => p.name === h))];
  const session = await hooked.prepare({ capture });
  throwIfCancelled(signal);
  const out = await session.run(textFeeds(hooked.graph, [tokens.ids]), { fetch: capture });

  const result: ContributionsResult = { tokens, position: t, heads: [], bySource: [], outputBiasNorm: [], maxError: [] };
  if (req.vectors) {
    result.vectors = [];
    result.outputBias = [];
    result.attnOut = [];
  }
  atts.forEach((a, l) => {
    const H = a.heads;
    const dh = a.headDim;
    const KV = a.kvHeads;
    const { v } = projections[l];
    const I = v.lin.inFeatures;
    const x = asFloat32(out.cache.get(vInputs[l])!);
    if (x.length !== S * I) throw new InputError(`block ${l}'s value projection input has ${x.length} values, expected ${S} tokens x ${I}`);
    const A = patternArrays(out.cache.get(patterns[l])!, H, S, l);
    const wo = weightInOut(hooked, projections[l].o); // [H*dh][d]
    const D = projections[l].o.outFeatures;
    if (projections[l].o.inFeatures !== H * dh) throw new InputError(`block ${l}'s output projection reads ${projections[l].o.inFeatures} values, expected ${H} heads x ${dh}`);
    const bo = initializerValues(hooked, projections[l].o.bias) ?? new Float64Array(D);

    // Values of the sources the target sees: val[j][kv*dh] = x_j W_V + b_V.
    const val = new Float64Array(S * v.width);
    for (let j = 0; j < S; j++) {
      for (let i = 0; i < I; i++) {
        const xi = x[j * I + i];
        if (xi === 0) continue;
        const row = i * v.width;
        for (let c = 0; c < v.width; c++) val[j * v.width + c] += xi * v.w[row + c];
      }
      if (v.b) for (let c = 0; c < v.width; c++) val[j * v.width + c] += v.b[c];
    }

    const total = Float64Array.from(bo);
    const headNorms: number[] = [];
    const bySource: number[][] = [];
    const vecsL: Float64Array[][] = [];
    for (let h = 0; h < H; h++) {
      const g = Math.floor((h * KV) / H);
      const headSum = new Float64Array(D);
      const norms: number[] = [];
      const vecsH: Float64Array[] = [];
      for (let j = 0; j < S; j++) {
        const w = A[h][t][j];
        const vec = new Float64Array(D);
        if (w !== 0) {
          for (let e = 0; e < dh; e++) {
            const s = w * val[j * v.width + g * dh + e];
            const row = (h * dh + e) * D;
            for (let c = 0; c < D; c++) vec[c] += s * wo[row + c];
          }
        }
        let n = 0;
        for (let c = 0; c < D; c++) {
          n += vec[c] * vec[c];
          headSum[c] += vec[c];
        }
        norms.push(Math.sqrt(n));
        if (req.vectors) vecsH.push(vec);
      }
      let n = 0;
      for (let c = 0; c < D; c++) {
        n += headSum[c] * headSum[c];
        total[c] += headSum[c];
      }
      headNorms.push(Math.sqrt(n));
      bySource.push(norms);
      vecsL.push(vecsH);
    }
    result.heads.push(headNorms);
    result.bySource.push(bySource);
    result.outputBiasNorm.push(Math.sqrt(bo.reduce((s, b) => s + b * b, 0)));
    const captured = out.cache.get(attnOut[l]);
    let err = NaN;
    let at: Float64Array | undefined;
    if (captured) {
      const all = asFloat32(captured);
      at = Float64Array.from(all.subarray(t * D, (t + 1) * D));
      err = 0;
      for (let c = 0; c < D; c++) err = Math.max(err, Math.abs(total[c] - at[c]));
    }
    result.maxError.push(err);
    if (req.vectors) {
      result.vectors!.push(vecsL);
      result.outputBias!.push(bo);
      result.attnOut!.push(at ?? new Float64Array(D).fill(NaN));
    }
  });
  return result;
}


function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
}
