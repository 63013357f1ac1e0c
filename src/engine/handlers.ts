/** The engine's request handlers: every method group of engine/methods/, over one shared state. */
import { attentionHandlers } from './methods/attention';
import { coreHandlers } from './methods/core';
import { decomposeHandlers } from './methods/decompose';
import { editHandlers } from './methods/edit';
import { localizeHandlers } from './methods/localize';
import type { AllHandlers } from './methods/state';
import { EngineState } from './methods/state';
import { traceHandlers } from './methods/trace';

export type { HandlerContext } from './methods/state';

/** The engine's state and its handlers (add a method group: one spread here, one `extends` in protocol.ts). */
export function createHandlers(): AllHandlers {
  const state = new EngineState();
  return {
    ...coreHandlers(state),
    ...traceHandlers(state),
    ...attentionHandlers(state),
    ...decomposeHandlers(state),
    ...localizeHandlers(state),
    ...editHandlers(state),
  };
}
