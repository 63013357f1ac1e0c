/** Engine methods of cross-attention localization (LocoGen): numbers as `mechanist localize`. */
import { findCrossAttention } from '../../runtime/instrument/crossAttention';
import { openModel } from '../../runtime/inspect';
import { localize } from '../../runtime/methods/localize';
import type { LocalizeResult } from '../../runtime/methods/localize';
import { TextTokenizer } from '../../runtime/tokenizer';
import type { EngineState, HandlersOf } from './state';

export interface LocalizeParams {
  id: string;
  /** The encoder file, for a decoder that reads `encoder_hidden_states` as an input. */
  encoder?: string;
  prompt: string;
  targetPrompt: string;
  decoderPrompt?: string;
  /** The answer token; default the top prediction for the target prompt. */
  answer?: string;
  window: number;
}

export interface LocalizeMethods {
  /** Scores every window of `window` consecutive cross-attention layers fed the target prompt's conditioning. */
  localize: { params: LocalizeParams; result: LocalizeResult };
  /** The model's cross-attention layers and the conditioning inputs it reads (an encoder file is needed when there are any). */
  crossAttention: { params: { id: string }; result: { layers: string[]; blocks: number[]; conditioningInputs: string[] } };
}

export function localizeHandlers(state: EngineState): HandlersOf<LocalizeMethods> {
  return {
    async crossAttention({ id }) {
      const { graph, arch } = state.get(id).hooked;
      const s = findCrossAttention(graph, arch);
      return { layers: s.layers.map((l) => l.name), blocks: s.layers.map((l) => l.block), conditioningInputs: s.conditioningInputs };
    },
    async localize(params, { progress, signal }) {
      const m = state.get(params.id);
      const hooked = m.hooked;
      findCrossAttention(hooked.graph, hooked.arch);
      const encoder = params.encoder ? openModel(params.encoder) : undefined;
      let tok: TextTokenizer;
      try {
        tok = state.tokenizer(m);
      } catch (e) {
        if (!params.encoder) throw e;
        tok = TextTokenizer.load(params.encoder);
      }
      const r = await localize(
        hooked,
        tok,
        { prompt: params.prompt, targetPrompt: params.targetPrompt, decoderPrompt: params.decoderPrompt || undefined, answer: params.answer, window: params.window, maxBatchRows: state.settings.maxBatchRows },
        { encoder: encoder && { model: encoder.model, graph: encoder.graph } },
        progress,
        signal,
      );
      state.noteProvider(hooked);
      return r;
    },
  };
}
