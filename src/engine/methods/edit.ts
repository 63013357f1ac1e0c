/** Engine methods of closed-form concept editing: numbers and files as `mechanist edit`. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError, textFeeds } from '../../runtime/feeds';
import { openModel } from '../../runtime/inspect';
import { findCrossAttention } from '../../runtime/instrument/crossAttention';
import { ENCODER_TEMPLATES, conceptEdit, isEncoderDecoder, isLanguageModel, resolveLayers, writeEditedModel } from '../../runtime/methods/edit';
import { TextTokenizer } from '../../runtime/tokenizer';
import { ModelError, OnnxModel } from '../../runtime/onnx/model';
import type { EditRequest, EditResult } from '../../runtime/methods/edit';
import type { EngineState, HandlersOf } from './state';

/** Generic relation templates offered for a language model (the user edits them). */
export const LM_TEMPLATES = ['{} lives in the city of', 'The job of {} is', '{} is known for', 'People say that {} is'];

/** What editing a layer of a model would touch, checked before the user is asked anything else. */
export interface EditSiteInfo {
  kind: 'language-model' | 'encoder' | 'encoder-decoder';
  /** The layer as given (`auto` stays `auto`: it is resolved while editing). */
  layer: string;
  /** The resolved weight (absent for `auto`; several: joined by ", "). */
  weight?: string;
  /** Every resolved weight (a list or `.kv` names several). */
  weights?: string[];
  node?: string;
  /** [out, in] features of the (first) linear layer. */
  features?: [number, number];
  /** Templates to offer: the runtime's for encoders, generic relations for language models, none for encoder-decoders (asked). */
  templates: string[];
  /** Encoder-decoders: the conditioning inputs a decoder file reads (an encoder file is needed when there are any). */
  conditioningInputs?: string[];
  /** Why the edit cannot run on this model (no tokenizer, inputs a text prompt cannot fill), if so. */
  problem?: string;
}

export interface EditMethods {
  /** Resolves a layer (`blocks.L.mlp`, `blocks.L.attn[.q|k|v|o]`, `blocks.L.cross_attn.k|v`, a weight name or `auto`) and says what the edit needs. */
  editSite: { params: { id: string; layer: string }; result: EditSiteInfo };
  /** The closed-form edit: writes `out` (never the original) and returns the before/after report; `encoder`: the encoder file of a decoder exported apart. */
  edit: { params: { id: string; encoder?: string } & Omit<EditRequest, 'backend'>; result: EditResult };
  /**
   * Moves an edited model (`from`, with the files its edit wrote, `files`) to `to`: written anew
   * there (data files it reads are kept in place when `to` is in the same folder, else copied
   * beside it), then every old file the new one does not read is deleted. `original` (the model
   * that was edited) and its data files are never written or deleted.
   */
  editSaveAs: { params: { from: string; files: string[]; weights: string[]; to: string; original: string }; result: { out: string; files: string[]; removed: string[] } };
}

export function editHandlers(state: EngineState): HandlersOf<EditMethods> {
  return {
    async editSite({ id, layer }) {
      const m = state.get(id);
      const { hooked } = m;
      const encdec = isEncoderDecoder(hooked);
      const lm = !encdec && isLanguageModel(hooked);
      const info: EditSiteInfo = { kind: encdec ? 'encoder-decoder' : lm ? 'language-model' : 'encoder', layer, templates: encdec ? [] : lm ? LM_TEMPLATES : ENCODER_TEMPLATES };
      if (layer !== 'auto') {
        const sites = resolveLayers(hooked, layer);
        const lin = sites[0].linear;
        Object.assign(info, { weight: sites.map((x) => x.linear.weight).join(', '), weights: sites.map((x) => x.linear.weight), node: lin.node, features: [lin.outFeatures, lin.inFeatures] });
      }
      try {
        if (encdec) {
          // The structure the edit runs on (an InputError names what is missing); a decoder file's tokenizer may sit beside its encoder.
          info.conditioningInputs = findCrossAttention(hooked.graph, hooked.arch).conditioningInputs;
          if (!info.conditioningInputs.length) state.tokenizer(m);
        } else {
          state.tokenizer(m);
          textFeeds(hooked.graph, [[0]]);
        }
      } catch (e) {
        info.problem = e instanceof Error ? e.message : String(e);
      }
      return info;
    },
    async editSaveAs({ from, files, weights, to, original }) {
      const src = path.resolve(from);
      const dest = path.resolve(to);
      if (dest === src) return { out: dest, files, removed: [] };
      const orig = OnnxModel.load(original);
      const protectedFiles = new Set([path.resolve(original), ...orig.externalFiles()]);
      if (protectedFiles.has(dest)) throw new InputError(`refusing to write over ${dest}, the original model or one of its data files`);
      if (fs.existsSync(dest)) throw new InputError(`${dest} already exists; choose a new file name`);
      const model = OnnxModel.load(src);
      const values = new Map<string, Float32Array>();
      for (const weight of weights) {
        const t = model.graph.initializer.find((x) => x.name === weight);
        if (!t) throw new ModelError(`${src} has no initializer ${weight}`);
        values.set(weight, model.tensorFloat32(t));
      }
      const written = writeEditedModel(model, values, dest);
      const keep = new Set([...written, ...OnnxModel.load(dest).externalFiles(), ...protectedFiles]);
      const removed = [src, ...files.map((f) => path.resolve(f))].filter((f, i, all) => all.indexOf(f) === i && !keep.has(f) && fs.existsSync(f));
      for (const f of removed) fs.rmSync(f, { force: true });
      return { out: dest, files: written, removed };
    },
    async edit({ id, encoder, ...req }, { progress, signal }) {
      const m = state.get(id);
      const enc = encoder ? openModel(encoder) : undefined;
      let tok: TextTokenizer;
      try {
        tok = state.tokenizer(m);
      } catch (e) {
        // A decoder exported apart: the tokenizer may sit beside the encoder (as for localize).
        if (!encoder) throw e;
        tok = TextTokenizer.load(encoder);
      }
      const r = await conceptEdit(m.hooked, tok, { ...req, backend: 'auto' }, progress, signal, { encoder: enc && { model: enc.model, graph: enc.graph } });
      state.noteProvider(m.hooked);
      return r;
    },
  };
}
