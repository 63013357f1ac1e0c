/**
 * The typed boundary between the extension (client.ts) and the engine process (host.ts).
 * Each method names its params and result; long requests stream progress and can be
 * cancelled by id.
 */
import type { ModelSummary } from '../runtime/inspect';
import type { DecomposeMethods } from './methods/decompose';
import type { EditMethods } from './methods/edit';
import type { LocalizeMethods } from './methods/localize';
import type { AttentionMethods } from './methods/attention';
import type { TraceMethods } from './methods/trace';
import type { ProviderChoice } from '../runtime/session';

/** An open model as the engine knows it. */
export interface OpenedModel extends ModelSummary {
  /** Handle for later requests about this model. */
  id: string;
}

/**
 * Every request the engine serves: params and result per method. Method groups live beside
 * their handlers in engine/methods/<group>.ts and are joined here, one `extends` each.
 */
export interface EngineMethods extends CoreMethods, TraceMethods, AttentionMethods, DecomposeMethods, LocalizeMethods, EditMethods {}

/** Opening models and the engine's own state. */
export interface CoreMethods {
  ping: { params: Record<string, never>; result: { pid: number; versions: NodeJS.ProcessVersions } };
  open: { params: { path: string }; result: OpenedModel };
  close: { params: { id: string }; result: { closed: boolean } };
  /** Lists the ONNX nodes behind a component: op type, inputs and outputs. */
  nodes: { params: { id: string; names: string[] }; result: { name: string; op: string; inputs: string[]; outputs: string[] }[] };
  /** Settings that apply to later runs. */
  configure: { params: EngineSettings; result: { ok: true } };
  /** Token ids and strings of a text (the model's tokenizer). */
  tokenize: { params: { id: string; text: string }; result: { ids: number[]; strings: string[] } };
  /** Top next-token predictions after a prompt. */
  predict: { params: { id: string; prompt: string; top: number }; result: { tokens: { id: number; text: string; p: number }[]; provider: string } };
  /** The execution provider runs use (or will use) and why. */
  provider: { params: Record<string, never>; result: { provider: 'cpu' | 'cuda' | 'pending'; reason: string } };
  /** For tests of cancellation and progress: counts to `steps`, one step per `ms`. */
  sleep: { params: { steps: number; ms: number }; result: { completed: number } };
}

export type Method = keyof EngineMethods;
export type Params<M extends Method> = EngineMethods[M]['params'];
export type Result<M extends Method> = EngineMethods[M]['result'];

/** Settings the extension passes on (from `mechanist.*`). */
export interface EngineSettings {
  provider?: ProviderChoice;
  threads?: number;
  cacheDir?: string;
  maxBatchRows?: number;
}

/** Extension -> engine. */
export type ToEngine =
  | { type: 'request'; id: number; method: Method; params: unknown }
  | { type: 'cancel'; id: number };

/** Engine -> extension. */
export type FromEngine =
  | { type: 'response'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string; kind: ErrorKind }
  | { type: 'progress'; id: number; message?: string; fraction?: number }
  | { type: 'ready'; pid: number };

/** What went wrong, so the UI can word it: a bad model, bad input, a cancel, memory, or a bug. */
export type ErrorKind = 'model' | 'input' | 'cancelled' | 'memory' | 'internal';

/** Progress reported by a method: a fraction in [0, 1] and/or a message. */
export interface Progress {
  report(p: { fraction?: number; message?: string }): void;
}
