/**
 * `mechanist decompose`: the exact decomposition of a vision transformer's representation of an
 * image into embedding, per-head and per-MLP contributions; with a CLIP text tower, feature
 * scores over a folder of images, top descriptions, retrieval and token heat maps.
 */
import { InputError } from '../runtime/feeds';
import type { HookedModel } from '../runtime/instrument/hookedModel';
import { imageBatch, listImages, modelPreprocessing } from '../runtime/image/load';
import { Decomposer, alignVectors, featureScores, fitAlignment, gramSchmidt, meanVector, retrieve, tokenHeatmap, topDescriptions } from '../runtime/methods/decompose';
import type { Alignment, ComponentScore, Decomposition } from '../runtime/methods/decompose';
import { embedTexts } from '../runtime/methods/textEmbed';
import { TextTokenizer } from '../runtime/tokenizer';
import { UsageError, numberOption, parse } from './args';
import { COMMON_OPTIONS, openHooked, required, stderrProgress } from './common';
import type { CliCommand } from './commands';

function splitList(v: string | undefined): string[] {
  return (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const round = (x: number): number => Number(x.toPrecision(7));
const arr = (v: ArrayLike<number>): number[] => Array.from(v, round);
const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

export const decomposeCommand: CliCommand = {
  usage:
    'decompose <vision.onnx> --image <file> [--text-model <text.onnx> --tokenizer <tokenizer.json>] [--feature <name> --descriptions "<a,b,c>" --images <folder>] [--component <name> [--retrieve <text>] [--heatmap]] [--align-model <clip-vision.onnx> --ridge L] [--per-token] [--vectors] [--preprocessor <preprocessor_config.json>] [--json]',
  summary: 'decompose an image representation into embedding, head and MLP contributions; score them by a feature described in text',
  async run(argv) {
    const { positionals, values: v } = parse(argv, {
      ...COMMON_OPTIONS,
      image: { type: 'string' },
      images: { type: 'string' },
      'text-model': { type: 'string' },
      feature: { type: 'string' },
      descriptions: { type: 'string' },
      component: { type: 'string' },
      retrieve: { type: 'string' },
      heatmap: { type: 'boolean' },
      'align-model': { type: 'string' },
      ridge: { type: 'string' },
      'per-token': { type: 'boolean' },
      vectors: { type: 'boolean' },
      preprocessor: { type: 'string' },
      position: { type: 'string' },
      'batch-rows': { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('expected one vision model path');
    const modelFile = positionals[0];
    const imageFile = required(v.image, 'image');
    const descriptions = splitList(v.descriptions);
    if (v.feature !== undefined && !descriptions.length) throw new UsageError('--feature needs --descriptions "<a,b,c>"');
    if ((descriptions.length || v.retrieve !== undefined) && !v['text-model']) throw new UsageError('--descriptions and --retrieve need --text-model <text.onnx>');
    if (v.feature !== undefined && !v.images) throw new UsageError('--feature scores components over a set of images: give --images <folder>');
    if (v.retrieve !== undefined && !v.images) throw new UsageError('--retrieve searches --images <folder>');
    if (v.heatmap && !v.component) throw new UsageError('--heatmap needs --component <blocks.L.attn.head.H | blocks.L.attn>');
    const perToken = !!v['per-token'] || !!v.heatmap;
    const opts = { perToken, position: numberOption('position', v.position, 0), batch: numberOption('batch-rows', v['batch-rows'], 16) };
    const progress = stderrProgress(v.quiet);
    const opened: HookedModel[] = [];
    try {
      const { hooked } = openHooked(modelFile, v, false);
      opened.push(hooked);
      const dec = new Decomposer(hooked);
      const prep = modelPreprocessing(modelFile, v.preprocessor);
      progress.report({ message: 'decomposing the image' });
      const [d] = await dec.decompose(await imageBatch([imageFile], prep), opts);

      const out: Record<string, unknown> = {
        model: modelFile,
        image: imageFile,
        space: hooked.arch.projection ? 'projection' : 'final-norm',
        components: d.components.map((c) => ({
          name: c.name,
          kind: c.kind,
          layer: c.layer ?? null,
          head: c.head ?? null,
          norm: round(norm(c.vector)),
          ...(v.vectors ? { vector: arr(c.vector) } : {}),
          ...(c.tokens ? { tokens: c.tokens.map((t) => round(norm(t))) } : {}),
          ...(c.tokens && v.vectors ? { tokenVectors: c.tokens.map(arr) } : {}),
        })),
        total: arr(d.total),
        output: arr(d.output),
        reconstructionError: d.reconstructionError,
        residualError: d.residualError,
        std: d.std,
        ...(perToken ? { tokens: d.tokens, grid: d.grid ?? null } : {}),
      };

      // Text space: the text tower, the folder of images and (without a CLIP projection) an alignment.
      let textEmbeds: Float64Array[] = [];
      let retrieveEmbed: Float64Array | undefined;
      let folder: { files: string[]; ds: Decomposition[] } | undefined;
      let alignment: Alignment | undefined;
      if (v['text-model']) {
        const { hooked: text } = openHooked(v['text-model'], v, false);
        opened.push(text);
        const tok = TextTokenizer.load(v['text-model'], v.tokenizer);
        progress.report({ message: 'embedding descriptions' });
        const texts = [...descriptions, ...(v.retrieve !== undefined ? [v.retrieve] : [])];
        const embeds = await embedTexts(text, tok, texts);
        textEmbeds = embeds.slice(0, descriptions.length);
        if (v.retrieve !== undefined) retrieveEmbed = embeds[embeds.length - 1];
        const width = embeds[0]?.length;
        if (v.images) {
          const files = listImages(v.images);
          progress.report({ message: `decomposing ${files.length} images` });
          folder = { files, ds: await dec.decompose(await imageBatch(files, prep), { ...opts, perToken: false }) };
        }
        if (width !== undefined && width !== dec.width) {
          // No shared space: fit the ridge alignment to a CLIP image tower over the folder.
          if (!v['align-model']) {
            throw new InputError(
              `the vision model's output has ${dec.width} values but the text embeddings ${width}: for a ViT without a CLIP projection give --align-model <clip-vision.onnx> (and --images) to fit linear maps into the CLIP space`,
            );
          }
          if (!folder) throw new UsageError('--align-model fits over --images <folder>');
          const { hooked: clip } = openHooked(v['align-model'], v, false);
          opened.push(clip);
          progress.report({ message: 'fitting the alignment' });
          const targets = (await new Decomposer(clip).decompose(await imageBatch(folder.files, modelPreprocessing(v['align-model'])), { batch: opts.batch })).map((x) => x.output);
          if (targets[0].length !== width) throw new InputError(`the alignment model's output has ${targets[0].length} values but the text embeddings ${width}`);
          alignment = fitAlignment(
            folder.ds.map((x) => x.components.map((c) => c.vector)),
            targets,
            numberOption('ridge', v.ridge, 1),
          );
          out.alignment = { lambda: alignment.lambda, r2: alignment.r2, images: folder.files.length };
        }
        out.textSpace = alignment ? 'aligned (ridge)' : 'projection';
      }
      const textVectors = (x: Decomposition): Float64Array[] => (alignment ? alignVectors(alignment, x.components.map((c) => c.vector)) : x.components.map((c) => c.vector));
      const sumOf = (vs: Float64Array[]): Float64Array => vs.reduce((s, a) => s.map((y, o) => y + a[o]), new Float64Array(vs[0].length));

      let scores: ComponentScore[] | undefined;
      if (v.feature !== undefined && folder) {
        const vecs = folder.ds.map(textVectors);
        scores = featureScores(
          d.components.map((c) => c.name),
          vecs,
          vecs.map(sumOf),
          gramSchmidt(textEmbeds),
        );
        out.feature = v.feature;
        out.descriptions = descriptions;
        out.scores = scores.map((s) => ({ name: s.name, score: round(s.score) }));
      }

      if (v.component) {
        const name = v.component;
        const layerHeads = /^blocks\.(\d+)\.attn$/.exec(name);
        const names = layerHeads ? d.components.filter((c) => c.kind === 'head' && c.layer === Number(layerHeads[1])).map((c) => c.name) : [name];
        if (!names.length || !names.every((n) => d.components.some((c) => c.name === n))) {
          throw new InputError(`no component "${name}" (components: embed, blocks.L.attn.head.H, blocks.L.attn.bias, blocks.L.mlp, or blocks.L.attn for a layer's heads)`);
        }
        const pick = (x: Decomposition): Float64Array => {
          const tv = textVectors(x);
          return sumOf(x.components.map((c, i) => (names.includes(c.name) ? tv[i] : new Float64Array(tv[i].length))));
        };
        const app: Record<string, unknown> = { name };
        if (textEmbeds.length) {
          app.descriptions = topDescriptions([pick(d)], descriptions, textEmbeds, folder ? meanVector(folder.ds.map(pick)) : undefined).map((t) => ({ text: t.text, score: round(t.score) }));
        }
        if (retrieveEmbed && folder) {
          app.retrieval = retrieve(folder.files, folder.ds.map(pick), retrieveEmbed).map((r) => ({ image: r.image, score: round(r.score) }));
        }
        if (v.heatmap) {
          if (alignment) throw new InputError('--heatmap in an aligned space is not supported: heat maps use the model\'s own output space');
          const hm = tokenHeatmap(d, names, retrieveEmbed);
          app.heatmap = { measure: retrieveEmbed ? `projection onto "${v.retrieve}"` : 'norm', cls: round(hm.cls), grid: hm.grid.map(arr) };
        }
        out.component = app;
      }
      progress.done();
      if (v.json) process.stdout.write(`${JSON.stringify(out)}\n`);
      else process.stdout.write(text(d, scores, out));
    } finally {
      for (const h of opened) await h.dispose();
    }
  },
};

function text(d: Decomposition, scores: ComponentScore[] | undefined, out: Record<string, unknown>): string {
  const lines = [`reconstruction error ${d.reconstructionError.toExponential(2)} (relative), ${d.components.length} components`];
  const byNorm = [...d.components].sort((a, b) => norm(b.vector) - norm(a.vector));
  for (const c of byNorm) lines.push(`  ${c.name.padEnd(24)} norm ${norm(c.vector).toFixed(4)}`);
  if (scores) {
    lines.push(`feature "${String(out.feature)}" scores:`);
    for (const s of scores) lines.push(`  ${s.name.padEnd(24)} ${s.score.toFixed(4)}`);
  }
  if (out.component) lines.push(JSON.stringify(out.component, null, 2));
  return `${lines.join('\n')}\n`;
}
