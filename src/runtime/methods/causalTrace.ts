/**
 * Causal tracing (causal mediation analysis) as ROME's experiments/causal_trace.py: corrupt the
 * subject, then restore clean activations at one (layer, token) at a time and measure how much
 * of the answer's probability comes back. All restorations of a sweep run batched in few
 * session runs of one instrumented graph; the clean and corrupted runs are shared by every
 * kind asked for.
 */
import { throwIfCancelled } from '../cancel';
import { InputError, textFeeds } from '../feeds';
import type { Patch, PreparedSession } from '../instrument/hookedModel';
import { RestartUnsupported } from '../instrument/restart';
import type { HookedModel } from '../instrument/hookedModel';
import { Random } from '../random';
import { asFloat32, fromFloat32, softmax } from '../tensor';
import type { HostTensor } from '../tensor';
import type { TextTokenizer } from '../tokenizer';
import { maxPositions } from './positions';
import { windowLayers } from './window';

export { windowLayers };

export type TraceKind = 'residual' | 'mlp' | 'attn';

/** How the subject is corrupted. */
export type Corruption =
  | {
      type: 'noise';
      /** Noise scale: a number, or `{ times: k }` for k x the std of the subject tokens' embeddings (default 3x). */
      nu?: number | { times: number };
      samples?: number;
      seed?: number;
      /** Exact standard-normal draws [samples][subjectTokens][d] (flattened), e.g. a reference's; scaled by nu. */
      standardNoise?: Float32Array;
      /** Exact noise to add [samples][subjectTokens][d] (flattened), already scaled; overrides nu. */
      noise?: Float32Array;
    }
  | { type: 'replace'; subject: string };

export interface TraceRequest {
  prompt: string;
  subject: string;
  /** The answer as a continuation of the prompt; default: the clean top-1 token. */
  target?: string;
  corruption: Corruption;
  kinds: TraceKind[];
  /** Window of layers restored for mlp/attn (default 10). */
  window?: number;
  /** Rows per session run (default 64: measured faster and leaner than larger batches on CPU). */
  maxBatchRows?: number;
}

export interface TraceResult {
  kind: TraceKind;
  window: number;
  inputTokens: { ids: number[]; strings: string[] };
  subjectRange: [number, number];
  answer: { id: number; text: string };
  highScore: number;
  lowScore: number;
  /** scores[layer][token]: mean p(answer) with that (layer, token) restored. */
  scores: number[][];
  corruption: { type: 'noise'; nu: number; samples: number; seed?: number } | { type: 'replace'; subject: string; subjectIds: number[] };
}

export interface TraceProgress {
  report(p: { fraction?: number; message?: string }): void;
}

const HOOK: Record<TraceKind, (l: number) => string> = {
  residual: (l) => `blocks.${l}.hook_resid_post`,
  mlp: (l) => `blocks.${l}.hook_mlp_out`,
  attn: (l) => `blocks.${l}.hook_attn_out`,
};

/** Runs a causal trace of every requested kind; results in the order of `kinds`. */
export async function causalTrace(hooked: HookedModel, tok: TextTokenizer, req: TraceRequest, progress?: TraceProgress, signal?: AbortSignal): Promise<TraceResult[]> {
  const { arch, graph } = hooked;
  const L = arch.layers;
  if (arch.family === 'unknown' || L === 0) throw new InputError('causal tracing needs a recognised transformer (no blocks were found in this model)');
  const kinds = [...new Set(req.kinds)];
  const window = Math.max(1, Math.round(req.window ?? 10));

  const ids = tok.encode(req.prompt);
  const limit = maxPositions(hooked);
  if (limit !== undefined && ids.length > limit) throw new InputError(`the prompt has ${ids.length} tokens but the model accepts at most ${limit}`);
  const strings = tok.tokenStrings(ids);
  const [s0, s1] = tok.findSpan(ids, req.subject);
  const S = ids.length;

  // One instrumented graph for everything: patch points at the embeddings and every restored
  // hook, captures of the same for the clean run, logits at the last position only.
  const restoreHooks = kinds.flatMap((k) => Array.from({ length: L }, (_, l) => HOOK[k](l)));
  const residHooks = Array.from({ length: L }, (_, l) => HOOK.residual(l));
  const noise = req.corruption.type === 'noise';
  const patchHooks = [...new Set([...(noise ? ['hook_embed'] : []), ...restoreHooks])];
  const captureHooks = [...new Set([...patchHooks, ...residHooks])];
  // Restartable blocks let a restoration at layer l start there from the corrupted run's
  // residual stream instead of recomputing the layers below it; graphs whose blocks share
  // state cannot be restructured and run every row from the embeddings.
  let session: PreparedSession;
  let restartable = true;
  try {
    session = await hooked.prepare({ capture: captureHooks, patch: patchHooks, lastTokenLogits: true, restart: true });
  } catch (e) {
    if (!(e instanceof RestartUnsupported)) throw e;
    restartable = false;
    session = await hooked.prepare({ capture: captureHooks, patch: patchHooks, lastTokenLogits: true });
  }
  throwIfCancelled(signal);

  // Clean run.
  progress?.report({ message: 'clean run' });
  const clean = await session.run(textFeeds(graph, [ids]), { fetch: captureHooks });
  const cleanProbs = softmax(asFloat32(clean.lastLogits!));
  const answerId = req.target !== undefined ? tok.continuationToken(req.prompt, req.target) : argmax(cleanProbs);
  const answer = { id: answerId, text: tok.decode([answerId]) };
  const highScore = cleanProbs[answerId];

  // Corrupted rows (without restoration) and the per-row corruption every later run repeats.
  let corruptIds = ids;
  let samples = 1;
  let embedValue: HostTensor | undefined;
  let corruptionInfo: TraceResult['corruption'];
  if (req.corruption.type === 'replace') {
    const other = tok.encode(req.corruption.subject, false);
    const alt = tok.encode(req.prompt.replace(req.subject, req.corruption.subject));
    const [a0, a1] = tok.findSpan(alt, req.corruption.subject);
    if (a1 - a0 !== s1 - s0 || alt.length !== S) {
      throw new InputError(`the replacement subject "${req.corruption.subject}" has ${a1 - a0} tokens in the prompt but "${req.subject}" has ${s1 - s0}; symmetric replacement needs equal token lengths`);
    }
    corruptIds = alt;
    corruptionInfo = { type: 'replace', subject: req.corruption.subject, subjectIds: alt.slice(a0, a1).length ? alt.slice(a0, a1) : other };
  } else {
    const c = req.corruption;
    samples = Math.max(1, Math.round(c.samples ?? 10));
    const embed = clean.cache.get('hook_embed')!;
    const D = embed.dims[embed.dims.length - 1];
    const cleanEmbed = asFloat32(embed);
    const subj = cleanEmbed.subarray(s0 * D, s1 * D);
    const nu = typeof c.nu === 'number' ? c.nu : (typeof c.nu === 'object' ? c.nu.times : 3) * std(subj);
    const n = samples * (s1 - s0) * D;
    let added: Float32Array;
    if (c.noise) added = c.noise;
    else {
      const base = c.standardNoise ?? gaussians(n, c.seed ?? 1);
      added = Float32Array.from(base, (z) => z * nu);
    }
    if (added.length !== n) throw new InputError(`the noise tensor has ${added.length} values; expected samples x subject tokens x d = ${samples} x ${s1 - s0} x ${D}`);
    const rows = new Float32Array(samples * S * D);
    for (let r = 0; r < samples; r++) {
      rows.set(cleanEmbed, r * S * D);
      for (let i = 0; i < (s1 - s0) * D; i++) rows[r * S * D + s0 * D + i] += added[r * (s1 - s0) * D + i];
    }
    embedValue = fromFloat32(rows, [samples, S, D], embed.type);
    corruptionInfo = { type: 'noise', nu, samples, seed: c.noise || c.standardNoise ? undefined : (c.seed ?? 1) };
  }

  const corruptFeeds = (n: number): ReturnType<typeof textFeeds> => textFeeds(graph, Array.from({ length: n }, () => corruptIds));
  /** Patches that corrupt `rows` rows that repeat the `samples` corrupted rows in order. */
  const corruptPatches = (rows: number): Patch[] => {
    if (!embedValue) return [];
    const D = embedValue.dims[2];
    const perRow = embedValue.data.length / samples;
    const Ctor = embedValue.data.constructor as new (n: number) => Float32Array | Uint16Array;
    const data = new Ctor(rows * perRow);
    for (let r = 0; r < rows; r++) data.set((embedValue.data as Float32Array | Uint16Array).subarray((r % samples) * perRow, (r % samples + 1) * perRow), r * perRow);
    const value: HostTensor = { type: embedValue.type, data, dims: [rows, S, D] };
    return [{ hook: 'hook_embed', rows: range(rows), positions: range(s0, s1), value }];
  };

  progress?.report({ message: 'corrupted run' });
  const corrupted = await session.run(corruptFeeds(samples), { patches: corruptPatches(samples), fetch: restartable ? residHooks : [] });
  const lowScore = meanProb(corrupted.lastLogits!, answerId, 0, samples);
  throwIfCancelled(signal);

  // Restorations: every (kind, layer, token) is `samples` rows; batch them.
  interface Job {
    kind: TraceKind;
    layer: number;
    token: number;
  }
  // In a causal (decoder-only) model, the states before the subject never see it: they are
  // the same in the clean and the corrupted run, so restoring them gives the corrupted score
  // exactly. Those (layer, token) cells are filled in without running.
  const causal = arch.family === 'gpt2' || arch.family === 'llama';
  const firstAffected = causal ? s0 : 0;
  const jobs: Job[] = [];
  for (const kind of kinds) for (let l = 0; l < L; l++) for (let t = firstAffected; t < S; t++) jobs.push({ kind, layer: l, token: t });
  const perBatch = Math.max(1, Math.floor((req.maxBatchRows ?? 64) / samples));
  const scores = new Map<TraceKind, number[][]>(kinds.map((k) => [k, Array.from({ length: L }, () => new Array<number>(S).fill(lowScore))]));
  // The block a job's rows can start at: after the restored layer (residual), or at the
  // window's first layer (mlp/attn); 0 when blocks are not restartable.
  const layersOf = (job: Job): number[] => (job.kind === 'residual' ? [job.layer] : windowLayers(job.layer, window, L));
  const startOf = (job: Job): number => (!restartable ? 0 : job.kind === 'residual' ? job.layer + 1 : layersOf(job)[0]);
  const groups = new Map<number, Job[]>();
  for (const job of jobs) groups.set(startOf(job), [...(groups.get(startOf(job)) ?? []), job]);
  let doneJobs = 0;
  for (const [start, group] of [...groups].sort((a, b) => a[0] - b[0])) {
    for (let j0 = 0; j0 < group.length; j0 += perBatch) {
      throwIfCancelled(signal);
      const batch = group.slice(j0, j0 + perBatch);
      const rows = batch.length * samples;
      const patches: Patch[] = start === 0 ? corruptPatches(rows) : [];
      let entry: HostTensor | undefined;
      if (start > 0) {
        // Each row enters block `start` with its corrupted sample's residual stream ...
        const corr = corrupted.cache.get(residHooks[start - 1])!;
        const perRow = corr.data.length / samples;
        const Ctor = corr.data.constructor as new (n: number) => Float32Array | Uint16Array;
        const data = new Ctor(rows * perRow);
        for (let r = 0; r < rows; r++) data.set((corr.data as Float32Array | Uint16Array).subarray((r % samples) * perRow, ((r % samples) + 1) * perRow), r * perRow);
        entry = { type: corr.type, data, dims: [rows, ...corr.dims.slice(1)] };
      }
      batch.forEach((job, b) => {
        const rowsOfJob = range(b * samples, (b + 1) * samples);
        for (const l of layersOf(job)) {
          const hook = HOOK[job.kind](l);
          if (job.kind === 'residual' && entry) {
            // ... with the restored token's clean state written in (a residual restoration
            // at layer l is exactly the entry of block l + 1).
            const clean1 = clean.cache.get(hook)!;
            const D = clean1.dims[clean1.dims.length - 1];
            const cell = (clean1.data as Float32Array | Uint16Array).subarray(job.token * D, (job.token + 1) * D);
            for (const r of rowsOfJob) (entry.data as Float32Array | Uint16Array).set(cell, (r * S + job.token) * D);
          } else patches.push({ hook, rows: rowsOfJob, positions: [job.token], value: clean.cache.get(hook)! });
        }
      });
      const out = (await session.run(corruptFeeds(rows), { patches, start: entry ? { block: start, entry } : undefined })).lastLogits!;
      batch.forEach((job, b) => {
        scores.get(job.kind)![job.layer][job.token] = meanProb(out, answerId, b * samples, (b + 1) * samples);
      });
      doneJobs += batch.length;
      progress?.report({ fraction: doneJobs / jobs.length, message: `restored ${doneJobs} of ${jobs.length} (layer, token) states` });
    }
  }

  return kinds.map((kind) => ({
    kind,
    window: kind === 'residual' ? 1 : window,
    inputTokens: { ids, strings },
    subjectRange: [s0, s1],
    answer,
    highScore,
    lowScore,
    scores: scores.get(kind)!,
    corruption: corruptionInfo,
  }));
}

/** Mean over rows [r0, r1) of softmax(last logits)[answer]. */
function meanProb(lastLogits: HostTensor, answer: number, r0: number, r1: number): number {
  const V = lastLogits.dims[lastLogits.dims.length - 1];
  const all = asFloat32(lastLogits);
  let sum = 0;
  for (let r = r0; r < r1; r++) sum += softmax(all.subarray(r * V, (r + 1) * V))[answer];
  return sum / (r1 - r0);
}

function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

function range(a: number, b?: number): number[] {
  const [lo, hi] = b === undefined ? [0, a] : [a, b];
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}

/** Population standard deviation. */
function std(x: Float32Array): number {
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let s = 0;
  for (const v of x) s += (v - m) ** 2;
  return Math.sqrt(s / x.length);
}

function gaussians(n: number, seed: number): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: n }, () => r.gaussian());
}
