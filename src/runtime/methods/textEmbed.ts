/** Text embeddings from a CLIP text tower (its `text_embeds` output), one prompt per run. */
import { InputError, textFeeds } from '../feeds';
import type { HookedModel } from '../instrument/hookedModel';
import { asFloat32 } from '../tensor';
import type { TextTokenizer } from '../tokenizer';

/** The text tower's embedding output: `text_embeds`, else the first 2-D output. */
export function textEmbedOutput(text: HookedModel): string {
  const outs = text.graph.outputs;
  const named = outs.find((o) => o.name === 'text_embeds');
  if (named) return named.name;
  const flat = outs.find((o) => text.graph.shape(o.name)?.length === 2);
  if (!flat) throw new InputError(`the text model has no text_embeds output (outputs: ${outs.map((o) => o.name).join(', ')})`);
  return flat.name;
}

/** Embeds each text (unnormalised, as the model outputs it). */
export async function embedTexts(text: HookedModel, tok: TextTokenizer, texts: string[]): Promise<Float64Array[]> {
  const out = textEmbedOutput(text);
  const session = await text.prepare({});
  const res: Float64Array[] = [];
  for (const t of texts) {
    const ids = tok.encode(t);
    if (!ids.length) throw new InputError(`"${t}" encodes to no tokens`);
    const r = await session.run(textFeeds(text.graph, [ids]), { outputs: [out] });
    res.push(Float64Array.from(asFloat32(r.outputs[out])));
  }
  return res;
}
