/**
 * The logit lens (nostalgebraist 2020): every layer's residual stream (`resid_post`) read
 * through the model's own final norm and unembedding. Done in the graph: a clean run captures
 * every layer's residual stream, then one batched run patches the last block's output (what the
 * final norm reads) with layer l's residual stream in row l, at every position, so the model's
 * own final norm and unembedding (LayerNorm or RMSNorm, tied or not) compute the lens exactly.
 */
import { throwIfCancelled } from '../cancel';
import { InputError, textFeeds } from '../feeds';
import type { HookedModel, Patch } from '../instrument/hookedModel';
import { argmax, asFloat32, softmax } from '../tensor';
import type { TextTokenizer } from '../tokenizer';
import { promptTokens } from './attention';
import type { PromptTokens } from './attention';

export interface LensRequest {
  prompt: string;
  /** The answer as a continuation of the prompt; default: the clean top-1 token at the last position. */
  target?: string;
  /** Tokens listed per (layer, position) (default 5). */
  topK?: number;
  /** Rows (layers) per session run (default: up to 32, fewer for long prompts or large vocabularies). */
  maxBatchRows?: number;
}

export interface LensToken {
  id: number;
  token: string;
  p: number;
}

export interface LensResult {
  tokens: PromptTokens;
  answer: { id: number; text: string };
  topK: number;
  /** Per layer: top[position][k] and p(answer) per position. */
  layers: { layer: number; top: LensToken[][]; pAnswer: number[] }[];
}

/** Every layer's residual stream through the final norm and unembedding, at every position. */
export async function logitLens(hooked: HookedModel, tok: TextTokenizer, req: LensRequest, signal?: AbortSignal): Promise<LensResult> {
  const { arch, graph } = hooked;
  const L = arch.layers;
  if (arch.family === 'unknown' || L === 0) throw new InputError('the logit lens needs a recognised transformer (no blocks were found in this model)');
  const resid = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_post`);
  const missing = resid.filter((h) => !arch.hookPoints.some((p) => p.name === h));
  if (missing.length) throw new InputError(`no residual stream hook ${missing[0]}: the logit lens needs every block's output`);
  const logitsName = graph.outputs[0]?.name;
  const finalNodes = new Set(arch.finalNorm?.nodes ?? []);
  const last = hooked.tensorOf(resid[L - 1]);
  if (!logitsName || !finalNodes.size || !(graph.consumers.get(last) ?? []).some((n) => finalNodes.has(graph.name(n)))) {
    throw new InputError('the logit lens needs a causal language model whose final norm reads the last block\'s output and feeds the logits');
  }
  const k = Math.max(1, Math.round(req.topK ?? 5));
  const tokens = promptTokens(hooked, tok, req.prompt);
  const S = tokens.ids.length;

  const session = await hooked.prepare({ capture: resid, patch: [resid[L - 1]] });
  throwIfCancelled(signal);
  const clean = await session.run(textFeeds(graph, [tokens.ids]), { fetch: resid, outputs: [logitsName] });
  const cleanLogits = clean.outputs[logitsName];
  const V = cleanLogits.dims[cleanLogits.dims.length - 1];
  if (cleanLogits.dims.length !== 3 || cleanLogits.dims[1] !== S) throw new InputError(`the model's logits have shape [${cleanLogits.dims.join(', ')}], expected [batch, ${S}, vocab]`);
  const cl = asFloat32(cleanLogits);
  const answerId = req.target !== undefined ? tok.continuationToken(req.prompt, req.target) : argmax(cl.subarray((S - 1) * V, S * V));

  const layers: LensResult['layers'] = [];
  // Each row returns [seq, vocab] logits: by default keep a run's logits under 2^26 values (256 MB).
  const perRun = Math.max(1, Math.round(req.maxBatchRows ?? Math.min(32, Math.floor(2 ** 26 / (S * V)))));
  for (let l0 = 0; l0 < L; l0 += perRun) {
    throwIfCancelled(signal);
    const batch = Array.from({ length: Math.min(perRun, L - l0) }, (_, i) => l0 + i);
    const patches: Patch[] = batch.map((l, r) => ({ hook: resid[L - 1], rows: [r], positions: range(S), value: clean.cache.get(resid[l])! }));
    const out = await session.run(textFeeds(graph, batch.map(() => tokens.ids)), { patches, outputs: [logitsName] });
    const logits = asFloat32(out.outputs[logitsName]);
    batch.forEach((l, r) => {
      const top: LensToken[][] = [];
      const pAnswer: number[] = [];
      for (let s = 0; s < S; s++) {
        const p = softmax(logits.subarray((r * S + s) * V, (r * S + s + 1) * V));
        pAnswer.push(p[answerId]);
        top.push(topK(p, k).map((id) => ({ id, token: tok.decode([id]), p: p[id] })));
      }
      layers.push({ layer: l, top, pAnswer });
    });
  }
  return { tokens, answer: { id: answerId, text: tok.decode([answerId]) }, topK: k, layers };
}

/** Indices of the k largest values, largest first (ties: lower index first). */
function topK(p: ArrayLike<number>, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < p.length; i++) {
    if (best.length === k && p[i] <= p[best[k - 1]]) continue;
    let at = best.length < k ? best.length : k - 1;
    if (best.length < k) best.push(i);
    while (at > 0 && p[best[at - 1]] < p[i]) {
      best[at] = best[at - 1];
      at--;
    }
    best[at] = i;
  }
  return best;
}


function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
