/** Core engine methods: models, settings, tokens, predictions, the provider in use. */
import { throwIfCancelled } from '../../runtime/cancel';
import { textFeeds } from '../../runtime/feeds';
import { openModel, summarize } from '../../runtime/inspect';
import { HookedModel } from '../../runtime/instrument/hookedModel';
import { cudaInstalled, gpuPresent, providerPlan } from '../../runtime/session';
import { asFloat32, softmax } from '../../runtime/tensor';
import type { CoreMethods } from '../protocol';
import type { EngineState, HandlersOf } from './state';

export function coreHandlers(state: EngineState): HandlersOf<CoreMethods> {
  return {
    async ping() {
      return { pid: process.pid, versions: process.versions };
    },
    async configure(s) {
      state.settings = { ...state.settings, ...s };
      return { ok: true };
    },
    async open({ path }, { progress }) {
      progress.report({ message: 'reading and discovering layers' });
      const { model, graph, arch } = openModel(path);
      const id = state.newId();
      const { provider, threads, cacheDir } = state.settings;
      state.models.set(id, { hooked: new HookedModel(model, graph, arch, { provider, threads, cacheDir }) });
      return { id, ...summarize(model, graph, arch) };
    },
    async close({ id }) {
      const m = state.models.get(id);
      state.models.delete(id);
      await m?.hooked.dispose();
      return { closed: !!m };
    },
    async nodes({ id, names }) {
      const { graph } = state.get(id).hooked;
      return names.flatMap((name) => {
        const n = graph.nodeByName.get(name);
        return n ? [{ name, op: n.domain ? `${n.domain}.${n.op_type}` : n.op_type, inputs: n.input, outputs: n.output }] : [];
      });
    },
    async tokenize({ id, text }) {
      const tok = state.tokenizer(state.get(id));
      const ids = tok.encode(text);
      return { ids, strings: tok.tokenStrings(ids) };
    },
    async predict({ id, prompt, top }) {
      const m = state.get(id);
      const tok = state.tokenizer(m);
      const session = await m.hooked.prepare({ lastTokenLogits: true });
      state.noteProvider(m.hooked);
      const out = await session.run(textFeeds(m.hooked.graph, [tok.encode(prompt)]));
      const p = softmax(asFloat32(out.lastLogits!));
      const order = Array.from(p.keys())
        .sort((a, b) => p[b] - p[a])
        .slice(0, top);
      return { tokens: order.map((i) => ({ id: i, text: tok.decode([i]), p: p[i] })), provider: session.provider };
    },
    async provider() {
      if (state.lastProvider) return state.lastProvider;
      const plan = providerPlan(state.settings.provider ?? 'auto', gpuPresent(), cudaInstalled());
      return { provider: 'pending' as const, reason: `${plan.reason}; no model has run yet` };
    },
    async sleep({ steps, ms }, { progress, signal }) {
      for (let i = 0; i < steps; i++) {
        throwIfCancelled(signal);
        await new Promise((r) => setTimeout(r, ms));
        progress.report({ fraction: (i + 1) / steps, message: `step ${i + 1} of ${steps}` });
      }
      return { completed: steps };
    },
  };
}
