/**
 * onnxruntime sessions: execution provider choice (CUDA when asked or available, else CPU,
 * with the reason recorded), thread count, and conversion between host tensors and ORT's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as ort from 'onnxruntime-node';
import { asOutOfMemory, checkSessionMemory, OutOfMemoryError } from './memory';
import type { OnnxModel } from './onnx/model';
import type { HostTensor, TensorType } from './tensor';

export type ProviderChoice = 'auto' | 'cpu' | 'cuda';

export interface SessionOptions {
  provider?: ProviderChoice;
  /** Intra-op threads (0 or undefined: one per CPU core, see `defaultThreads`). */
  threads?: number;
  /** Folder that the model's external data locations are relative to (for models given as bytes). */
  externalDataFolder?: string;
  /** onnxruntime graph optimisation level (default 'all'). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * onnxruntime's memory patterns (default on): a plan of one allocation per input shape,
   * worth it when shapes repeat. A causal trace's restorations rarely repeat one (rows, positions
   * and start block vary), and without patterns its peak memory on the bench model was 20 MiB
   * lower (354 vs 374 MiB) at the same speed.
   */
  memPattern?: boolean;
  /** The model being loaded (its weights, or those it shares with an instrumented copy): checked against the memory left (memory.ts). */
  weightsOf?: OnnxModel;
}

/** An onnxruntime session and the provider it really uses. */
export interface OpenSession {
  session: ort.InferenceSession;
  provider: 'cpu' | 'cuda';
  /** Why this provider (e.g. "CUDA requested but unavailable: ...; using CPU"). */
  reason: string;
}

/** True when this machine shows an NVIDIA GPU to user space. */
export function gpuPresent(): boolean {
  return fs.existsSync('/dev/nvidia0') || fs.existsSync('/proc/driver/nvidia/version');
}

/** True when onnxruntime-node was installed with its CUDA provider. */
export function cudaInstalled(): boolean {
  try {
    return ort.listSupportedBackends?.().some((b) => b.name === 'cuda') ?? false;
  } catch {
    return false;
  }
}

/** The provider order to try for a choice, with the reason. Pure, so the selection logic is testable. */
export function providerPlan(choice: ProviderChoice, gpu: boolean, cudaPackage: boolean): { order: ('cuda' | 'cpu')[]; reason: string } {
  if (choice === 'cpu') return { order: ['cpu'], reason: 'CPU selected in settings' };
  if (choice === 'cuda') return { order: ['cuda', 'cpu'], reason: 'CUDA selected in settings' };
  if (gpu && cudaPackage) return { order: ['cuda', 'cpu'], reason: 'auto: GPU present and onnxruntime-node has CUDA' };
  if (gpu) return { order: ['cpu'], reason: 'auto: GPU present but onnxruntime-node was installed without CUDA (see README)' };
  return { order: ['cpu'], reason: 'auto: no GPU' };
}

/**
 * One intra-op thread per CPU core. onnxruntime-node's own default (0) ran a causal trace on
 * this project's 2-core machine with about one busy core: 10.7 s wall against 7.4 s with 2
 * threads, and a batched forward at 136 against 178 GFLOP/s.
 */
export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}

/** Creates a session, falling back from CUDA to CPU with a reason instead of failing. */
export async function openSession(model: string | Uint8Array, opts: SessionOptions = {}): Promise<OpenSession> {
  const plan = providerPlan(opts.provider ?? 'auto', gpuPresent(), cudaInstalled());
  let lastError = '';
  for (const provider of plan.order) {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel: opts.optimization ?? 'all',
      // Fatal only: warnings (e.g. "initializer appears in graph inputs", which the patch inputs do
      // on purpose) are noise, and errors come back as exceptions, reported once by the caller.
      logSeverityLevel: 4,
      intraOpNumThreads: opts.threads || defaultThreads(),
      enableMemPattern: opts.memPattern ?? true,
      ...(opts.externalDataFolder ? { extra: { session: { model_external_initializers_file_folder_path: opts.externalDataFolder } } } : {}),
    };
    if (provider === 'cpu' && opts.weightsOf) checkSessionMemory(opts.weightsOf, 'cpu');
    try {
      const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
      const reason = lastError ? `${plan.reason}; CUDA failed (${lastError}), using CPU` : plan.reason;
      return { session, provider, reason };
    } catch (e) {
      lastError = (e instanceof Error ? e.message : String(e)).split('\n')[0];
      if (provider !== 'cpu') continue;
      const oom = asOutOfMemory(e, 'loading the model into onnxruntime');
      if (oom instanceof OutOfMemoryError) throw oom;
      throw new Error(`onnxruntime could not load the model: ${lastError}`);
    }
  }
  throw new Error(`onnxruntime could not load the model: ${lastError}`);
}

/** Host tensor -> onnxruntime tensor (no copy). */
export function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(t.type as ort.Tensor.Type, t.data as never, t.dims);
}

/** onnxruntime tensor -> host tensor (no copy). */
export function fromOrt(t: ort.Tensor): HostTensor {
  return { type: t.type as TensorType, data: t.data as HostTensor['data'], dims: [...t.dims] };
}
