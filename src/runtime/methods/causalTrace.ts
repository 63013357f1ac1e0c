/**
 * Causal tracing (causal mediation analysis) as ROME's experiments/causal_trace.py: corrupt the
 * subject, then restore clean activations at one (layer, token) at a time and measure how much
 * of the answer's probability comes back. All restorations of a sweep run batched in few
 * session runs of one instrumented graph; the clean and corrupted runs are shared by every
 * kind asked for.
 */
import { throwIfCancelled } from '../cancel';
import { InputError, textFeeds } from '../feeds';
import type { Patch, PreparedSession, RunStart } from '../instrument/hookedModel';
import type { HookedModel } from '../instrument/hookedModel';
import { Random } from '../random';
import { argmax, asFloat32, fromFloat32, sliceAxis, tileRows } from '../tensor';
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
  /**
   * How the restorations ran: `suffix` (from the restored layer and token, earlier positions'
   * keys and values from the corrupted run), `restart` (from the restored layer, every
   * position), `full` (every layer); with the number of session runs and rows.
   */
  sweep: { mode: 'suffix' | 'restart' | 'full'; runs: number; rows: number };
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
  // What enters each block (and, at L, the final norm): block 0's input, then every block's output.
  const blockInputs = ['blocks.0.hook_resid_pre', ...residHooks];
  const noise = req.corruption.type === 'noise';
  const patchHooks = [...new Set([...(noise ? ['hook_embed'] : []), ...restoreHooks])];
  // (Block 0's input is needed only to restart there; a fused embedding norm may not offer it.)
  const pre0 = arch.hookPoints.some((h) => h.name === blockInputs[0]) ? [blockInputs[0]] : [];
  const captureHooks = [...new Set([...patchHooks, ...residHooks, ...pre0])];
  // Restartable blocks let a restoration at layer l start there from the corrupted run's
  // residual stream instead of recomputing the layers below it, and, in a causal model, at the
  // restored token with the earlier positions' keys and values taken from the corrupted run
  // (suffix.ts). Graphs that cannot be restructured so fall back a step at a time.
  const causal = arch.family === 'gpt2' || arch.family === 'llama';
  let session: PreparedSession | undefined;
  let mode: 'suffix' | 'restart' | 'full' = 'full';
  for (const m of causal ? (['suffix', 'restart', 'full'] as const) : (['restart', 'full'] as const)) {
    try {
      session = await hooked.prepare({ capture: captureHooks, patch: patchHooks, lastTokenLogits: true, restart: m !== 'full', suffix: m === 'suffix' });
      mode = m;
      break;
    } catch (e) {
      // A rewrite this graph does not allow, or one onnxruntime refuses to load: try the next
      // simpler one (a plain session's error is the one worth reporting).
      if (m === 'full') throw e;
    }
  }
  if (!session) throw new Error('unreachable: no session was prepared');
  throwIfCancelled(signal);

  // Clean run.
  progress?.report({ message: 'clean run' });
  const clean = await session.run(textFeeds(graph, [ids]), { fetch: captureHooks, probs: true });
  const cleanProbs = clean.lastProbs!.data as Float32Array;
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
    return [{ hook: 'hook_embed', rows: range(rows), positions: range(s0, s1), value: tileRows(embedValue, rows) }];
  };

  progress?.report({ message: 'corrupted run' });
  // MLP restorations skip their window's first layer (see below): they need its corrupted outputs.
  const mlpHooks = mode !== 'full' && kinds.includes('mlp') ? Array.from({ length: L }, (_, l) => HOOK.mlp(l)) : [];
  const corrupted = await session.run(corruptFeeds(samples), { patches: corruptPatches(samples), fetch: mode === 'full' ? [] : [...blockInputs, ...mlpHooks], fetchKv: mode === 'suffix', probs: true });
  const lowScore = meanProb(corrupted.lastProbs!, answerId, 0, samples);
  throwIfCancelled(signal);
  /** The corrupted run's input to block `start` at positions t0.., and every later block's keys and values before t0, for `rows` rows. */
  const suffixStart = (start: number, t0: number, rows: number): RunStart => {
    // The corrupted run's keys and values as they are, one per sample: the graph keeps the
    // positions before t0 and tiles them to the rows.
    const past = Object.fromEntries((session.kvPoints ?? []).filter((p) => p.block >= start).map((p) => [p.input, corrupted.kv!.get(p.input)!]));
    return { block: start, entry: tileRows(sliceAxis(corrupted.cache.get(blockInputs[start])!, 1, t0, S), rows), past };
  };
  // A suffix run with nothing restored must give the corrupted run's logits; a graph whose
  // masks or positions the rewrite did not see would not (then restorations run at full length).
  if (mode === 'suffix' && S > 1) {
    const t0 = Math.floor(S / 2);
    const probe = await session.run(corruptFeeds(samples), { start: suffixStart(0, t0, samples) }).catch(() => undefined);
    const want = asFloat32(corrupted.lastLogits!);
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 1); // no spread: samples × vocabulary values overflow the stack
    // float16 logits differ by rounding (an ulp at their scale is ~1e-3 of it); a wrong graph differs by far more.
    const tol = (corrupted.lastLogits!.type === 'float16' ? 4e-3 : 1e-4) * scale;
    // (Not `> tol`: NaN logits, e.g. a query row masked from every key, must fail too.)
    if (!probe || !(maxAbsDiff(asFloat32(probe.lastLogits!), want) <= tol)) mode = 'restart';
  }

  // Restorations: every (kind, layer, token) is `samples` rows; batch them.
  interface Job {
    kind: TraceKind;
    layer: number;
    token: number;
  }
  // In a causal (decoder-only) model, the states before the subject never see it: they are
  // the same in the clean and the corrupted run, so restoring them gives the corrupted score
  // exactly. Those (layer, token) cells are filled in without running.
  const firstAffected = causal ? s0 : 0;
  const jobs: Job[] = [];
  for (const kind of kinds) for (let l = 0; l < L; l++) for (let t = firstAffected; t < S; t++) jobs.push({ kind, layer: l, token: t });
  const maxRows = Math.max(samples, req.maxBatchRows ?? 64);
  const scores = new Map<TraceKind, number[][]>(kinds.map((k) => [k, Array.from({ length: L }, () => new Array<number>(S).fill(lowScore))]));
  // The block a job's rows can start at: after the restored layer (residual), or at the
  // window's first layer (mlp/attn); 0 when blocks are not restartable.
  const layersOf = (job: Job): number[] => (job.kind === 'residual' ? [job.layer] : windowLayers(job.layer, window, L));
  // Restoring an MLP output at the window's first layer a leaves that layer's input corrupted,
  // so its output is the corrupted one plus (clean - corrupted) MLP output at the token: such
  // rows start at block a + 1 from that sum (float32 models; the residual stream is a sum of
  // the module outputs in GPT-2 and LLaMA blocks).
  // Only where each block adds its MLP output to the stream as it is (no post-MLP norm or scale).
  const mlpSkip = mlpHooks.length > 0 && corrupted.cache.get(mlpHooks[0])!.type === 'float32' && mlpHooks.every((h, l) => addedAsIs(hooked, hooked.tensorOf(h), hooked.tensorOf(HOOK.residual(l))));
  const startOf = (job: Job): number =>
    mode === 'full' ? 0 : job.kind === 'residual' ? job.layer + 1 : job.kind === 'mlp' && mlpSkip ? layersOf(job)[0] + 1 : layersOf(job)[0];
  const groups = new Map<number, Job[]>();
  for (const job of jobs) groups.set(startOf(job), [...(groups.get(startOf(job)) ?? []), job]);
  const batches: { start: number; jobs: Job[] }[] = [];
  for (const [start, group] of [...groups].sort((a, b) => a[0] - b[0])) {
    for (const b of planBatches(group, samples, maxRows, mode === 'suffix' ? S : 0)) batches.push({ start, jobs: b });
  }
  // Kept for one batch only (its jobs share t0): across batches these would add up to every
  // hook x every t0 x the sequence.
  const cleanCut = new Map<string, HostTensor>();
  /** A clean hook value at positions t0.. (patch values of a suffix run). */
  const cleanFrom = (hook: string, t0: number): HostTensor => {
    const key = `${hook}@${t0}`;
    let v = cleanCut.get(key);
    if (!v) cleanCut.set(key, (v = t0 ? sliceAxis(clean.cache.get(hook)!, 1, t0, S) : clean.cache.get(hook)!));
    return v;
  };
  let doneJobs = 0;
  for (const { start, jobs: batch } of batches) {
    throwIfCancelled(signal);
    const rows = batch.length * samples;
    cleanCut.clear();
    // Suffix runs start at the batch's earliest restored token; positions before it are the corrupted run's.
    const t0 = mode === 'suffix' ? Math.min(...batch.map((j) => j.token)) : 0;
    let begin: RunStart | undefined;
    const patches: Patch[] = [];
    if (t0 > 0) begin = suffixStart(start, t0, rows);
    else if (start > 0) begin = { block: start, entry: tileRows(corrupted.cache.get(blockInputs[start])!, rows) };
    else patches.push(...corruptPatches(rows));
    batch.forEach((job, b) => {
      const rowsOfJob = range(b * samples, (b + 1) * samples);
      for (const l of layersOf(job)) {
        const hook = HOOK[job.kind](l);
        if (job.kind === 'residual' && begin) {
          // A residual restoration at layer l is exactly the entry of block l + 1: write the
          // restored token's clean state into it.
          const clean1 = clean.cache.get(hook)!;
          const D = clean1.dims[clean1.dims.length - 1];
          const cell = (clean1.data as Float32Array | Uint16Array).subarray(job.token * D, (job.token + 1) * D);
          const Sp = begin.entry.dims[1];
          for (const r of rowsOfJob) (begin.entry.data as Float32Array | Uint16Array).set(cell, (r * Sp + job.token - t0) * D);
        } else if (begin && job.kind === 'mlp' && l === start - 1) {
          const cleanMlp = asFloat32(clean.cache.get(hook)!);
          const corrMlp = asFloat32(corrupted.cache.get(hook)!);
          const entry = begin.entry.data as Float32Array;
          const D = cleanMlp.length / S;
          const Sp = begin.entry.dims[1];
          for (const r of rowsOfJob) {
            const at = (r * Sp + job.token - t0) * D;
            const corrAt = ((r % samples) * S + job.token) * D;
            for (let i = 0; i < D; i++) entry[at + i] += cleanMlp[job.token * D + i] - corrMlp[corrAt + i];
          }
        } else patches.push({ hook, rows: rowsOfJob, positions: [job.token - t0], value: cleanFrom(hook, t0) });
      }
    });
    const out = (await session.run(corruptFeeds(rows), { patches, start: begin, probs: true })).lastProbs!;
    batch.forEach((job, b) => {
      scores.get(job.kind)![job.layer][job.token] = meanProb(out, answerId, b * samples, (b + 1) * samples);
    });
    doneJobs += batch.length;
    progress?.report({ fraction: doneJobs / jobs.length, message: `restored ${doneJobs} of ${jobs.length} (layer, token) states` });
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
    sweep: { mode, runs: batches.length, rows: batches.reduce((n, b) => n + b.jobs.length * samples, 0) },
  }));
}

/**
 * Splits one start block's jobs into session runs of at most `maxRows` rows. With suffix runs
 * (`seqLen` > 0) a run computes positions from its earliest token on, so jobs are taken latest
 * token first and a run ends where the positions it would add cost more than another run's
 * fixed overhead (a small dynamic program over the sorted jobs); without, runs are simply full.
 */
export function planBatches<J extends { token: number }>(group: J[], samples: number, maxRows: number, seqLen: number): J[][] {
  const perRun = Math.max(1, Math.floor(maxRows / samples));
  if (!seqLen) return Array.from({ length: Math.ceil(group.length / perRun) }, (_, i) => group.slice(i * perRun, (i + 1) * perRun));
  const sorted = [...group].sort((a, b) => b.token - a.token);
  // Cost in token-rows; a run's fixed cost (If nodes, feeds, small kernels) is about that of 32 more.
  const OVERHEAD = 32;
  const best = new Array<number>(sorted.length + 1).fill(Infinity);
  const cut = new Array<number>(sorted.length + 1).fill(0);
  best[0] = 0;
  for (let i = 1; i <= sorted.length; i++) {
    for (let j = Math.max(0, i - perRun); j < i; j++) {
      const cost = best[j] + OVERHEAD + (i - j) * samples * (seqLen - sorted[i - 1].token);
      if (cost < best[i]) {
        best[i] = cost;
        cut[i] = j;
      }
    }
  }
  const out: J[][] = [];
  for (let i = sorted.length; i > 0; i = cut[i]) out.unshift(sorted.slice(cut[i], i));
  return out;
}

/** Whether `value` reaches `sum` only through Adds that take it once (a residual stream's sum of module outputs). */
function addedAsIs(hooked: HookedModel, value: string, sum: string): boolean {
  const PASS = new Set(['Identity', 'Dropout']);
  let v = value;
  for (let step = 0; step < 8; step++) {
    if (v === sum) return true;
    const next = (hooked.graph.consumers.get(v) ?? []).filter((n) => n.op_type === 'Add' || PASS.has(n.op_type));
    if (next.length !== 1) return false;
    const n = next[0];
    if (n.op_type === 'Add' && n.input.filter((x) => x === v).length !== 1) return false;
    v = n.output[0];
  }
  return false;
}

/** The mean over rows r0..r1 of the answer's probability (`lastProbs`: [rows, 1, vocabulary]). */
function meanProb(lastProbs: HostTensor, answer: number, r0: number, r1: number): number {
  const V = lastProbs.dims[lastProbs.dims.length - 1];
  const p = lastProbs.data as Float32Array;
  let sum = 0;
  for (let r = r0; r < r1; r++) sum += p[r * V + answer];
  return sum / (r1 - r0);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
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
