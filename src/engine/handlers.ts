/** The engine's request handlers: each method of protocol.ts, over the pure runtime. */
import { throwIfCancelled } from '../runtime/cancel';
import { textFeeds } from '../runtime/feeds';
import { HookedModel } from '../runtime/instrument/hookedModel';
import { causalTrace } from '../runtime/methods/causalTrace';
import { openModel, summarize } from '../runtime/inspect';
import { asFloat32, softmax } from '../runtime/tensor';
import { TextTokenizer } from '../runtime/tokenizer';
import { cudaInstalled, gpuPresent, providerPlan } from '../runtime/session';
import type { EngineMethods, EngineSettings, Method, Progress } from './protocol';

/** A model held open by the engine, with its hooks and (lazily) its tokenizer. */
interface Loaded {
  hooked: HookedModel;
  tokenizer?: TextTokenizer;
}

export interface HandlerContext {
  progress: Progress;
  signal: AbortSignal;
}

type Handlers = { [M in Method]: (params: EngineMethods[M]['params'], ctx: HandlerContext) => Promise<EngineMethods[M]['result']> };

/** The engine's state and its handlers. */
export function createHandlers(): Handlers {
  const models = new Map<string, Loaded>();
  let settings: EngineSettings = {};
  /** What the last session really got (CUDA may have fallen back to CPU). */
  let lastProvider: { provider: 'cpu' | 'cuda'; reason: string } | undefined;
  let next = 1;
  const get = (id: string): Loaded => {
    const m = models.get(id);
    if (!m) throw new Error(`no open model with id ${id}`);
    return m;
  };
  const tokenizer = (m: Loaded): TextTokenizer => (m.tokenizer ??= TextTokenizer.load(m.hooked.model.path));
  return {
    async ping() {
      return { pid: process.pid, versions: process.versions };
    },
    async configure(s) {
      settings = { ...settings, ...s };
      return { ok: true };
    },
    async open({ path }, { progress }) {
      progress.report({ message: 'reading and discovering layers' });
      const { model, graph, arch } = openModel(path);
      const id = `m${next++}`;
      models.set(id, { hooked: new HookedModel(model, graph, arch, { provider: settings.provider, threads: settings.threads, cacheDir: settings.cacheDir }) });
      return { id, ...summarize(model, graph, arch) };
    },
    async close({ id }) {
      const m = models.get(id);
      models.delete(id);
      await m?.hooked.dispose();
      return { closed: !!m };
    },
    async nodes({ id, names }) {
      const { graph } = get(id).hooked;
      return names.flatMap((name) => {
        const n = graph.nodeByName.get(name);
        return n ? [{ name, op: n.domain ? `${n.domain}.${n.op_type}` : n.op_type, inputs: n.input, outputs: n.output }] : [];
      });
    },
    async tokenize({ id, text }) {
      const tok = tokenizer(get(id));
      const ids = tok.encode(text);
      return { ids, strings: tok.tokenStrings(ids) };
    },
    async predict({ id, prompt, top }) {
      const m = get(id);
      const tok = tokenizer(m);
      const session = await m.hooked.prepare({ lastTokenLogits: true });
      lastProvider = { provider: session.open.provider, reason: session.open.reason };
      const out = await session.run(textFeeds(m.hooked.graph, [tok.encode(prompt)]));
      const p = softmax(asFloat32(out.lastLogits!));
      const order = Array.from(p.keys())
        .sort((a, b) => p[b] - p[a])
        .slice(0, top);
      return { tokens: order.map((i) => ({ id: i, text: tok.decode([i]), p: p[i] })), provider: session.provider };
    },
    async trace(params, { progress, signal }) {
      const m = get(params.id);
      const results = await causalTrace(m.hooked, tokenizer(m), { ...params, maxBatchRows: settings.maxBatchRows }, progress, signal);
      const s = await m.hooked.prepare({ lastTokenLogits: true }).catch(() => undefined);
      if (s) lastProvider = { provider: s.open.provider, reason: s.open.reason };
      return results;
    },
    async provider() {
      if (lastProvider) return lastProvider;
      const plan = providerPlan(settings.provider ?? 'auto', gpuPresent(), cudaInstalled());
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
