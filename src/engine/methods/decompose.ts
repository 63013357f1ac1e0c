/**
 * Engine methods of the decomposition of a vision transformer's image representation: per
 * (layer, head), MLP and embedding contributions, with a CLIP text tower their top descriptions
 * and feature scores, and per-token heat maps of the heads. Numbers as `mechanist decompose`.
 */
import * as path from 'node:path';
import { throwIfCancelled } from '../../runtime/cancel';
import { InputError } from '../../runtime/feeds';
import { decodeImage, encodePng } from '../../runtime/image/decode';
import { imageBatch, listImages, modelPreprocessing } from '../../runtime/image/load';
import { resizeAndCrop } from '../../runtime/image/preprocess';
import { openModel } from '../../runtime/inspect';
import { HookedModel } from '../../runtime/instrument/hookedModel';
import { Decomposer, featureScores, gramSchmidt, meanVector, tokenHeatmap, topDescriptions } from '../../runtime/methods/decompose';
import type { ComponentKind, Decomposition } from '../../runtime/methods/decompose';
import { embedTexts } from '../../runtime/methods/textEmbed';
import { TextTokenizer } from '../../runtime/tokenizer';
import type { EngineState, HandlersOf } from './state';

/** A token heat map over the patch grid: CLS apart, `grid[row][col]`. */
export interface TokenMap {
  cls: number;
  grid: number[][];
}

/** One component of a decomposition, as the panel shows it. */
export interface DecomposedView {
  name: string;
  kind: ComponentKind;
  layer?: number;
  head?: number;
  /** Norm of the component's vector in the output space. */
  norm: number;
  /** Feature score (mean correlation over the feature's directions), when a feature was given. */
  score?: number;
  /** Descriptions ranked for this component (highest first), with a text tower. */
  descriptions?: { text: string; score: number }[];
  /** Heads: norm of each patch token's part. */
  heatmap?: TokenMap;
  /** Heads, with descriptions: each token's part projected onto description k's unit embedding (in `DecomposeResult.descriptions` order). */
  projections?: TokenMap[];
}

export interface DecomposeParams {
  id: string;
  /** The image file. */
  image: string;
  /** CLIP text tower (its tokenizer.json beside it). */
  textModel?: string;
  /** Name of the feature the descriptions describe (e.g. "colour"). */
  feature?: string;
  /** Descriptions embedded by the text tower. */
  descriptions?: string[];
  /** Folder of images for feature scores and the descriptions' baseline (default: the image's folder). */
  imagesFolder?: string;
}

export interface DecomposeResult {
  modelPath: string;
  image: string;
  /** The image as the model sees it (resized, cropped), PNG base64. */
  imagePng: string;
  imageSize: [number, number];
  space: 'projection' | 'final-norm';
  /** Components in the model's order. */
  components: DecomposedView[];
  tokens: number;
  /** Patch grid [rows, cols]. */
  grid?: [number, number];
  reconstructionError: number;
  textModel?: string;
  feature?: string;
  descriptions?: string[];
  /** The images feature scores and description baselines are taken over. */
  images?: string[];
  /** Why there are no feature scores although a feature was asked (e.g. one image only). */
  scoreNote?: string;
}

export interface DecomposeMethods {
  /** Decomposes one image; with a text tower, ranks descriptions and scores a feature. */
  decompose: { params: DecomposeParams; result: DecomposeResult };
  /** The family of each ONNX file (to offer CLIP text towers); `error` when it cannot be read. */
  families: { params: { paths: string[] }; result: { path: string; family?: string; error?: string }[] };
}

const round = (x: number): number => Number(x.toPrecision(7));
const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
const roundMap = (m: { cls: number; grid: number[][] }): TokenMap => ({ cls: round(m.cls), grid: m.grid.map((r) => r.map(round)) });

export function decomposeHandlers(state: EngineState): HandlersOf<DecomposeMethods> {
  const decomposers = new WeakMap<HookedModel, Decomposer>();
  const textModels = new Map<string, { hooked: HookedModel; tok: TextTokenizer }>();
  const textModel = (file: string): { hooked: HookedModel; tok: TextTokenizer } => {
    let t = textModels.get(file);
    if (!t) {
      const { model, graph, arch } = openModel(file);
      const { provider, threads, cacheDir } = state.settings;
      t = { hooked: new HookedModel(model, graph, arch, { provider, threads, cacheDir }), tok: TextTokenizer.load(file) };
      textModels.set(file, t);
    }
    return t;
  };
  return {
    async families({ paths }, { progress, signal }) {
      const out: { path: string; family?: string; error?: string }[] = [];
      for (const [i, p] of paths.entries()) {
        throwIfCancelled(signal);
        progress.report({ fraction: i / paths.length, message: path.basename(p) });
        try {
          out.push({ path: p, family: openModel(p).arch.family });
        } catch (e) {
          out.push({ path: p, error: e instanceof Error ? e.message : String(e) });
        }
      }
      return out;
    },
    async decompose(params, { progress, signal }) {
      const m = state.get(params.id);
      const hooked = m.hooked;
      let dec = decomposers.get(hooked);
      if (!dec) {
        dec = new Decomposer(hooked);
        decomposers.set(hooked, dec);
      }
      const prep = modelPreprocessing(hooked.model.path);
      const seen = resizeAndCrop(await decodeImage(params.image), prep);
      progress.report({ message: 'decomposing the image', fraction: 0.1 });
      const [d] = await dec.decompose(await imageBatch([params.image], prep), { perToken: true }, signal);
      state.noteProvider(hooked);
      throwIfCancelled(signal);

      const descriptions = (params.descriptions ?? []).map((s) => s.trim()).filter(Boolean);
      if (descriptions.length && !params.textModel) throw new InputError('descriptions need a CLIP text tower');
      let textEmbeds: Float64Array[] = [];
      let folder: { files: string[]; ds: Decomposition[] } | undefined;
      let scoreNote: string | undefined;
      if (params.textModel && descriptions.length) {
        const text = textModel(params.textModel);
        progress.report({ message: 'embedding descriptions', fraction: 0.4 });
        textEmbeds = await embedTexts(text.hooked, text.tok, descriptions);
        if (textEmbeds[0] && textEmbeds[0].length !== dec.width) {
          throw new InputError(`the vision model's output has ${dec.width} values but the text embeddings ${textEmbeds[0].length}: the text tower must be this CLIP model's`);
        }
        const files = listImages(params.imagesFolder ?? path.dirname(params.image));
        progress.report({ message: `decomposing ${files.length} images`, fraction: 0.6 });
        try {
          folder = { files, ds: await dec.decompose(await imageBatch(files, prep), { perToken: false }, signal) };
        } catch (e) {
          if (!(e instanceof InputError)) throw e;
          scoreNote = e.message;
        }
      }
      throwIfCancelled(signal);
      const scores = new Map<string, number>();
      if (params.feature !== undefined && textEmbeds.length && folder) {
        if (folder.files.length < 2) scoreNote = `feature scores are correlations over images: the folder ${path.dirname(folder.files[0])} has only one image`;
        else {
          const vecs = folder.ds.map((x) => x.components.map((c) => c.vector));
          const totals = folder.ds.map((x) => x.total);
          for (const s of featureScores(
            d.components.map((c) => c.name),
            vecs,
            totals,
            gramSchmidt(textEmbeds),
          ))
            scores.set(s.name, s.score);
        }
      }
      const components: DecomposedView[] = d.components.map((c, i) => {
        const view: DecomposedView = { name: c.name, kind: c.kind, layer: c.layer, head: c.head, norm: round(norm(c.vector)) };
        if (scores.has(c.name)) view.score = round(scores.get(c.name)!);
        if (textEmbeds.length) {
          const baseline = folder ? meanVector(folder.ds.map((x) => x.components[i].vector)) : undefined;
          view.descriptions = topDescriptions([c.vector], descriptions, textEmbeds, baseline).map((t) => ({ text: t.text, score: round(t.score) }));
        }
        if (c.tokens && d.grid) {
          view.heatmap = roundMap(tokenHeatmap(d, [c.name]));
          if (textEmbeds.length) view.projections = textEmbeds.map((e) => roundMap(tokenHeatmap(d, [c.name], e)));
        }
        return view;
      });
      progress.report({ fraction: 1 });
      return {
        modelPath: hooked.model.path,
        image: params.image,
        imagePng: (await encodePng(seen)).toString('base64'),
        imageSize: [seen.width, seen.height],
        space: hooked.arch.projection ? 'projection' : 'final-norm',
        components,
        tokens: d.tokens,
        grid: d.grid,
        reconstructionError: d.reconstructionError,
        textModel: params.textModel,
        feature: textEmbeds.length ? params.feature : undefined,
        descriptions: textEmbeds.length ? descriptions : undefined,
        images: folder?.files,
        scoreNote,
      };
    },
  };
}
