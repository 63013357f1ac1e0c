/**
 * A model you can cache and patch activations of, by TransformerLens hook names:
 * `runWithCache(feeds, hooks)` and `runWithPatches(feeds, patches)`, or `prepare()` one
 * instrumented session and run it many times (clean, corrupted and patched rows alike).
 */
import type { Architecture } from '../architecture/types';
import type { OnnxGraph } from '../onnx/graph';
import type { OnnxModel } from '../onnx/model';
import { onnxType } from '../onnx/proto';
import { DataType } from '../onnx/types';
import { asOutOfMemory } from '../memory';
import { fromOrt, openSession, toOrt } from '../session';
import type { OpenSession, ProviderChoice } from '../session';
import { size } from '../tensor';
import type { HostTensor } from '../tensor';
import { cachedGraph } from './graphCache';
import { instrument, normsToUnfuse, patchDefaults } from './rewrite';
import { restartDefaults, restartFeeds } from './restart';
import { suffixFeeds } from './suffixFeeds';
import type { KvPoint } from './suffix';
import type { Instrumented } from './rewrite';

/**
 * Version of the restart/suffix rewrite (restart.ts, suffix.ts) in on-disk cache keys: bump it when
 * the graphs they build change, or a cache would hand back graphs of the earlier code.
 * 2: suffix prefixes fed whole and tiled in the graph; nodes reading only a patched value stay in their block.
 * 3: tables sliced from constants along one axis are cut along it in suffix runs.
 * 4: keys and values keep their own element type (float32 attention in a float16 graph).
 * 5: blocks' captured values gated by `mechanist.capture`.
 * 6: the last block's MLP at the last position only in suffix runs without captures (lastMlp.ts).
 */
const RESTART_REWRITE = 6;
/** Version of the last-position outputs in cache keys (as RESTART_REWRITE). 2: their softmax as well. */
const LAST_REWRITE = 2;

/** Replace a hook's activation at some (row, position) cells with given values. */
export interface Patch {
  /** Hook name (`blocks.3.hook_resid_post`) or raw ONNX value name. */
  hook: string;
  /** Batch rows it applies to. */
  rows: number[];
  /** Sequence positions (axis 1) it applies to. */
  positions: number[];
  /** Replacement values, dims [1 or batch, seq, ...]; a leading 1 broadcasts to every row. */
  value: HostTensor;
}

export interface PrepareSpec {
  capture?: string[];
  patch?: string[];
  /** Blocks become restartable: a run may start at any block from a fed residual stream (see restart.ts). */
  restart?: boolean;
  /** Restartable blocks that may also start at a token, with earlier positions' keys and values fed (suffix.ts; implies restart). */
  suffix?: boolean;
  /** Also output `lastLogits` [batch, 1, vocab], and drop the model's full logits. */
  lastTokenLogits?: boolean;
  /** Attention patterns (`blocks.L.attn.hook_pattern`) whose pre-softmax scores take an additive mask (knockout). */
  knockout?: string[];
}

export interface RunResult {
  /** Captured activations by the name they were asked for. */
  cache: Map<string, HostTensor>;
  lastLogits?: HostTensor;
  /** With `probs`: their softmax over the vocabulary (float32), computed in the run. */
  lastProbs?: HostTensor;
  /** The model's own outputs that were fetched. */
  outputs: Record<string, HostTensor>;
  /** With `fetchKv`: every suffix point's keys or values, by its prefix input name (see `kvPoints`). */
  kv?: Map<string, HostTensor>;
}

/**
 * Where a run starts: block `block` with `entry` as its input; with `past`, at a token: the
 * entry covers the last S' of the S positions, and `past` holds every suffix point's keys or
 * values (by input name) of all S positions as an earlier run computed them (the graph keeps
 * the first S - S'), for every row or for k rows that the batch repeats in order (row r takes
 * row r mod k).
 */
export interface RunStart {
  block: number;
  entry: HostTensor;
  past?: Record<string, HostTensor>;
}

export interface HookedOptions {
  provider?: ProviderChoice;
  threads?: number;
  /** Folder for rewritten graphs (none: rebuild each time). */
  cacheDir?: string;
}

/** A hook name that the model does not have. */
export class HookError extends Error {
  override readonly name = 'InputError';
}

export class HookedModel {
  private readonly sessions = new Map<string, Promise<PreparedSession>>();
  /** The provider the latest session got, and why (CUDA may have fallen back to CPU). */
  lastProvider?: { provider: 'cpu' | 'cuda'; reason: string };

  constructor(
    readonly model: OnnxModel,
    readonly graph: OnnxGraph,
    readonly arch: Architecture,
    readonly options: HookedOptions = {},
  ) {}

  /** The ONNX value behind a hook name (raw value names pass through). */
  tensorOf(hook: string): string {
    const hp = this.arch.hookPoints.find((h) => h.name === hook);
    if (hp) return hp.tensor;
    if (this.graph.producer.has(hook) || this.graph.inputs.some((i) => i.name === hook)) return hook;
    const near = this.arch.hookPoints.map((h) => h.name).filter((n) => n.split('.').pop() === hook.split('.').pop()).slice(0, 4);
    throw new HookError(`no hook point or tensor named "${hook}"${near.length ? ` (did you mean ${near.join(', ')}?)` : this.arch.family === 'unknown' ? ' (the architecture is unknown: pass a raw ONNX value name)' : ''}`);
  }

  /** An instrumented session for a capture/patch set (built once, cached in memory and on disk). */
  prepare(spec: PrepareSpec): Promise<PreparedSession> {
    const n = {
      capture: [...new Set(spec.capture ?? [])].sort(),
      patch: [...new Set(spec.patch ?? [])].sort(),
      knockout: [...new Set(spec.knockout ?? [])].sort(),
      last: !!spec.lastTokenLogits,
      restart: !!spec.restart || !!spec.suffix,
      suffix: !!spec.suffix,
    };
    // (Options join the key only when used, so existing on-disk cache keys stay valid. Restartable
    // graphs carry the version of their rewrite: the cache outlives the code that wrote it.)
    // Graphs that unfuse a patched Skip norm's sum (rewrite.ts) did not do so before: their key says so.
    const unfused = normsToUnfuse(this.graph, n.patch.map((h) => this.arch.hookPoints.find((x) => x.name === h)?.tensor ?? h)).size > 0; // (unknown names fail in build)
    const key = JSON.stringify({ capture: n.capture, patch: n.patch, last: n.last && LAST_REWRITE, ...(n.knockout.length ? { knockout: n.knockout } : {}), ...(n.restart ? { restart: RESTART_REWRITE } : {}), ...(n.suffix ? { suffix: true } : {}), ...(unfused ? { unfused: 1 } : {}) });
    let s = this.sessions.get(key);
    if (!s) {
      s = this.build(n, key);
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  /** Runs once and returns the activations of `hooks`. */
  async runWithCache(feeds: Record<string, HostTensor>, hooks: string[], outputs: string[] = []): Promise<RunResult> {
    const s = await this.prepare({ capture: hooks });
    return s.run(feeds, { fetch: hooks, outputs });
  }

  /** Runs once with patches applied (every row may patch different cells). */
  async runWithPatches(feeds: Record<string, HostTensor>, patches: Patch[], capture: string[] = [], outputs: string[] = []): Promise<RunResult> {
    const s = await this.prepare({ capture, patch: patches.map((p) => p.hook) });
    return s.run(feeds, { patches, fetch: capture, outputs });
  }

  async dispose(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await s.then((x) => x.release()).catch(() => undefined);
  }

  private async build(n: { capture: string[]; patch: string[]; knockout: string[]; last: boolean; restart: boolean; suffix: boolean }, key: string): Promise<PreparedSession> {
    const tensors = (hooks: string[]): Map<string, string> => new Map(hooks.map((h) => [h, this.tensorOf(h)]));
    const cap = tensors(n.capture);
    const pat = tensors(n.patch);
    const ko = tensors(n.knockout);
    let lastSpec: { from: string; logits: string } | undefined;
    if (n.last) {
      const from = this.arch.hookPoints.find((h) => h.name === 'ln_final.hook_normalized')?.tensor;
      const logits = this.graph.outputs[0]?.name;
      if (!from || !logits) throw new HookError('this model has no final norm feeding its logits: next-token methods need a causal language model');
      lastSpec = { from, logits };
    }
    const restart = n.restart
      ? {
          blocks: this.arch.blocks,
          residPre0: this.tensorOf('blocks.0.hook_resid_pre'),
          residPost: this.arch.blocks.map((b) => this.tensorOf(`blocks.${b.index}.hook_resid_post`)),
          suffix: n.suffix,
          lastMlpOut: this.arch.hookPoints.find((h) => h.name === `blocks.${this.arch.blocks[this.arch.blocks.length - 1].index}.hook_mlp_out`)?.tensor,
        }
      : undefined;
    let result: Instrumented | undefined;
    const make = (): Instrumented =>
      instrument(this.model, this.graph, { capture: [...cap.values()], patch: [...pat.values()], lastTokenLogits: lastSpec, keepOutputs: !n.last, scoreMasks: [...ko.values()], restart });
    const bytes = cachedGraph(this.options.cacheDir, this.model.path, key, () => {
      result = make();
      return onnxType('ModelProto').encode(result.proto as never).finish();
    });
    result ??= make(); // names of the added inputs/outputs (cheap: no encoding)
    const session = await openSession(bytes, { provider: this.options.provider, threads: this.options.threads, externalDataFolder: this.model.dir, weightsOf: this.model, memPattern: !n.restart });
    this.lastProvider = { provider: session.provider, reason: session.reason };
    return new PreparedSession(session, result, cap, pat, ko);
  }
}

/** One instrumented onnxruntime session. */
export class PreparedSession {
  constructor(
    readonly open: OpenSession,
    private readonly inst: Instrumented,
    /** hook -> tensor */
    private readonly captured: Map<string, string>,
    private readonly patchable: Map<string, string>,
    /** hook -> softmax output with a score mask */
    private readonly maskable: Map<string, string> = new Map(),
  ) {}

  get provider(): string {
    return this.open.provider;
  }

  /**
   * Runs the session: `fetch` hooks (captured), `outputs` of the model, `lastLogits` when prepared
   * (and their softmax with `probs`);
   * `scoreMasks` (pattern hook -> additive mask [batch, 1|heads, query, key]) for knockout points.
   */
  async run(
    feeds: Record<string, HostTensor>,
    opts: { patches?: Patch[]; fetch?: string[]; outputs?: string[]; scoreMasks?: Record<string, HostTensor>; start?: RunStart; fetchKv?: boolean; probs?: boolean } = {},
  ): Promise<RunResult> {
    const ortFeeds: Record<string, ReturnType<typeof toOrt>> = {};
    const info = this.inst.restart;
    if (opts.start && !info) throw new HookError('this session was not prepared with restartable blocks');
    if ((opts.start?.past || opts.fetchKv) && !info?.suffix) throw new HookError('this session was not prepared for suffix runs');
    // Blocks hand on their captured values only when something is fetched besides the last logits.
    const capture = !!(opts.fetch?.length || opts.outputs?.length || opts.fetchKv);
    const restart = info ? { ...(opts.start ? restartFeeds(opts.start.block, opts.start.entry, capture) : restartDefaults(this.inst.floatType, capture)), ...suffixFeeds(info, opts.start?.past, opts.start?.block) } : {};
    for (const [k, v] of Object.entries({ ...patchDefaults(this.inst), ...restart, ...feeds })) ortFeeds[k] = toOrt(v);
    const byTensor = new Map<string, Patch[]>();
    for (const p of opts.patches ?? []) {
      const t = this.patchable.get(p.hook);
      if (!t) throw new HookError(`"${p.hook}" was not prepared as a patch point`);
      const list = byTensor.get(t) ?? [];
      list.push(p);
      byTensor.set(t, list);
    }
    const batch = batchSize(feeds);
    for (const [t, patches] of byTensor) {
      const names = this.inst.patchInputs.get(t)!;
      const { mask, value } = patchTensors(patches, batch, names.elemType, names.maskType === DataType.BOOL);
      ortFeeds[names.mask] = toOrt(mask);
      ortFeeds[names.value] = toOrt(value);
    }
    for (const [h, m] of Object.entries(opts.scoreMasks ?? {})) {
      const t = this.maskable.get(h);
      if (!t) throw new HookError(`"${h}" was not prepared for knockout`);
      ortFeeds[this.inst.scoreMasks!.get(t)!.input] = toOrt(m);
    }
    const fetchNames: string[] = [];
    for (const h of opts.fetch ?? []) {
      const t = this.captured.get(h);
      if (!t) throw new HookError(`"${h}" was not prepared for capture`);
      fetchNames.push(this.inst.captureOutputs.get(t)!);
    }
    if (this.inst.lastLogits) fetchNames.push(this.inst.lastLogits);
    if (opts.probs && this.inst.lastProbs) fetchNames.push(this.inst.lastProbs);
    fetchNames.push(...(opts.outputs ?? []));
    const kvPoints = opts.fetchKv ? info!.suffix!.kv : [];
    fetchNames.push(...kvPoints.map((p) => p.value));
    let out: Awaited<ReturnType<typeof this.open.session.run>>;
    try {
      out = await this.open.session.run(ortFeeds, [...new Set(fetchNames)]);
    } catch (e) {
      throw asOutOfMemory(e, `running ${batch} row${batch === 1 ? '' : 's'} through onnxruntime`, this.open.provider);
    }
    const cache = new Map<string, HostTensor>();
    for (const h of opts.fetch ?? []) cache.set(h, fromOrt(out[this.inst.captureOutputs.get(this.captured.get(h)!)!]));
    const outputs: RunResult['outputs'] = {};
    for (const o of opts.outputs ?? []) outputs[o] = fromOrt(out[o]);
    const kv = opts.fetchKv ? new Map(kvPoints.map((p) => [p.input, fromOrt(out[p.value])])) : undefined;
    return { cache, outputs, kv, lastLogits: this.inst.lastLogits ? fromOrt(out[this.inst.lastLogits]) : undefined, lastProbs: opts.probs && this.inst.lastProbs ? fromOrt(out[this.inst.lastProbs]) : undefined };
  }

  /** The suffix points (keys and values per block, with their sequence axes), when prepared with `suffix`. */
  get kvPoints(): KvPoint[] | undefined {
    return this.inst.restart?.suffix?.kv;
  }

  /** Element type of the score mask a knockout point takes (`knockoutMask` builds one). */
  scoreMaskType(hook: string): number {
    const t = this.maskable.get(hook);
    if (!t) throw new HookError(`"${hook}" was not prepared for knockout`);
    return this.inst.scoreMasks!.get(t)!.elemType;
  }

  async release(): Promise<void> {
    await this.open.session.release();
  }
}

/** Batch size of a set of feeds: the leading dim of the first input. */
function batchSize(feeds: Record<string, HostTensor>): number {
  const first = Object.values(feeds)[0];
  return first?.dims[0] ?? 1;
}

/** Builds the mask [B, S, 1...] and value [1|B, S, ...] inputs of one patched tensor. */
export function patchTensors(patches: Patch[], batch: number, floatType: number, boolMask = true): { mask: HostTensor; value: HostTensor } {
  const v0 = patches[0].value;
  const rank = v0.dims.length;
  const seq = v0.dims[1];
  const rest = v0.dims.slice(2);
  const cell = size(rest);
  for (const p of patches) {
    if (p.value.dims.length !== rank || p.value.dims[1] !== seq || size(p.value.dims.slice(2)) !== cell) {
      throw new HookError(`patch values for "${p.hook}" disagree in shape: [${p.value.dims.join(', ')}] vs [${v0.dims.join(', ')}]`);
    }
  }
  const mask = new Uint8Array(batch * seq);
  for (const p of patches) {
    for (const r of p.rows) {
      if (r < 0 || r >= batch) throw new HookError(`patch row ${r} is outside the batch of ${batch}`);
      for (const s of p.positions) {
        if (s < 0 || s >= seq) throw new HookError(`patch position ${s} is outside the sequence of ${seq}`);
        mask[r * seq + s] = 1;
      }
    }
  }
  const maskDims = [batch, seq, ...rest.map(() => 1)];
  const maskT: HostTensor = boolMask ? { type: 'bool', data: mask, dims: maskDims } : { type: 'float32', data: Float32Array.from(mask), dims: maskDims };
  // One shared single-row value broadcasts: no [B, S, D] buffer is built.
  if (patches.every((p) => p.value === v0) && v0.dims[0] === 1) return { mask: maskT, value: v0 };
  const isHalf = floatType === DataType.FLOAT16;
  const data = isHalf ? new Uint16Array(batch * seq * cell) : new Float32Array(batch * seq * cell);
  for (const p of patches) {
    const src = p.value.data as Float32Array | Uint16Array;
    const vb = p.value.dims[0];
    for (const r of p.rows) {
      const sr = vb === 1 ? 0 : r;
      for (const s of p.positions) data.set(src.subarray((sr * seq + s) * cell, (sr * seq + s + 1) * cell), (r * seq + s) * cell);
    }
  }
  return { mask: maskT, value: { type: isHalf ? 'float16' : 'float32', data, dims: [batch, seq, ...rest] } };
}
