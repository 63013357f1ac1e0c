/** Engine methods of causal tracing. */
import { causalTrace } from '../../runtime/methods/causalTrace';
import type { Corruption, TraceKind, TraceResult } from '../../runtime/methods/causalTrace';
import type { EngineState, HandlersOf } from './state';

export interface TraceMethods {
  /** Causal trace of every kind asked for (one clean and one corrupted run shared). */
  trace: {
    params: { id: string; prompt: string; subject: string; target?: string; corruption: Corruption; kinds: TraceKind[]; window: number };
    result: TraceResult[];
  };
}

export function traceHandlers(state: EngineState): HandlersOf<TraceMethods> {
  return {
    async trace(params, { progress, signal }) {
      const m = state.get(params.id);
      const results = await causalTrace(m.hooked, state.tokenizer(m), { ...params, maxBatchRows: state.settings.maxBatchRows }, progress, signal);
      state.noteProvider(m.hooked);
      return results;
    },
  };
}
