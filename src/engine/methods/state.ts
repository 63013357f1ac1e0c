/** What every engine method group shares: the open models, the settings, and lookups. */
import type { HookedModel } from '../../runtime/instrument/hookedModel';
import { TextTokenizer } from '../../runtime/tokenizer';
import type { EngineMethods, EngineSettings, Progress } from '../protocol';

/** A model held open by the engine, with its hooks and (lazily) its tokenizer. */
export interface Loaded {
  hooked: HookedModel;
  tokenizer?: TextTokenizer;
}

export interface HandlerContext {
  progress: Progress;
  signal: AbortSignal;
}

/** Handlers for a subset of the engine's methods. */
export type HandlersOf<M extends object> = {
  [K in keyof M]: M[K] extends { params: infer P; result: infer R } ? (params: P, ctx: HandlerContext) => Promise<R> : never;
};

export type AllHandlers = HandlersOf<EngineMethods>;

export class EngineState {
  readonly models = new Map<string, Loaded>();
  settings: EngineSettings = {};
  /** What the last session really got (CUDA may have fallen back to CPU). */
  lastProvider?: { provider: 'cpu' | 'cuda'; reason: string };
  private next = 1;

  newId(): string {
    return `m${this.next++}`;
  }

  get(id: string): Loaded {
    const m = this.models.get(id);
    if (!m) throw new Error(`no open model with id ${id}`);
    return m;
  }

  /** The model's tokenizer (tokenizer.json beside it), loaded once. */
  tokenizer(m: Loaded): TextTokenizer {
    return (m.tokenizer ??= TextTokenizer.load(m.hooked.model.path));
  }

  /** Records the provider the model's latest session really uses. */
  noteProvider(hooked: HookedModel): void {
    if (hooked.lastProvider) this.lastProvider = hooked.lastProvider;
  }
}
