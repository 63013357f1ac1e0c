/** The engine's request handlers: each method of protocol.ts, over the pure runtime. */
import { throwIfCancelled } from '../runtime/cancel';
import { openModel, summarize } from '../runtime/inspect';
import type { OnnxGraph } from '../runtime/onnx/graph';
import type { OnnxModel } from '../runtime/onnx/model';
import type { Architecture } from '../runtime/architecture/types';
import type { EngineMethods, Method, Progress } from './protocol';

/** A model held open by the engine. */
export interface Loaded {
  model: OnnxModel;
  graph: OnnxGraph;
  arch: Architecture;
}

export interface HandlerContext {
  progress: Progress;
  signal: AbortSignal;
}

type Handlers = { [M in Method]: (params: EngineMethods[M]['params'], ctx: HandlerContext) => Promise<EngineMethods[M]['result']> };

/** The engine's state and its handlers. */
export function createHandlers(): Handlers {
  const models = new Map<string, Loaded>();
  let next = 1;
  const get = (id: string): Loaded => {
    const m = models.get(id);
    if (!m) throw new Error(`no open model with id ${id}`);
    return m;
  };
  return {
    async ping() {
      return { pid: process.pid, versions: process.versions };
    },
    async open({ path }, { progress }) {
      progress.report({ message: 'reading and discovering layers' });
      const loaded = openModel(path);
      const id = `m${next++}`;
      models.set(id, loaded);
      return { id, ...summarize(loaded.model, loaded.graph, loaded.arch) };
    },
    async close({ id }) {
      return { closed: models.delete(id) };
    },
    async nodes({ id, names }) {
      const { graph } = get(id);
      return names.flatMap((name) => {
        const n = graph.nodeByName.get(name);
        return n ? [{ name, op: n.domain ? `${n.domain}.${n.op_type}` : n.op_type, inputs: n.input, outputs: n.output }] : [];
      });
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
