/** How many tokens a model accepts: the rows of its learned position embedding, if it has one. */
import type { HookedModel } from '../instrument/hookedModel';

export function maxPositions(hooked: Pick<HookedModel, 'arch' | 'graph'>): number | undefined {
  const params = hooked.arch.embedding?.params ?? [];
  const pos = params.find((p) => p.shape.length === 2 && /position|wpe|pos_emb/i.test(p.name));
  return pos?.shape[0];
}
