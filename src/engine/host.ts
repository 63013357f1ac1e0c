/**
 * The engine process (started by client.ts with child_process.fork): parses models, runs
 * onnxruntime and the methods, so that a 500 MB protobuf or a native crash never blocks or
 * kills the extension host.
 */
import { CancelledError } from '../runtime/cancel';
import { asOutOfMemory, OutOfMemoryError } from '../runtime/memory';
import { ModelError } from '../runtime/onnx/model';
import { createHandlers } from './handlers';
import type { HandlerContext } from './handlers';
import type { ErrorKind, FromEngine, Method, ToEngine } from './protocol';

const handlers = createHandlers();
const running = new Map<number, AbortController>();

function send(msg: FromEngine): void {
  process.send?.(msg);
}

function kindOf(e: unknown): ErrorKind {
  if (e instanceof CancelledError) return 'cancelled';
  if (e instanceof ModelError) return 'model';
  if (e instanceof OutOfMemoryError) return 'memory';
  if (e instanceof Error && e.name === 'InputError') return 'input';
  return 'internal';
}

async function handle(id: number, method: Method, params: unknown): Promise<void> {
  const controller = new AbortController();
  running.set(id, controller);
  const ctx: HandlerContext = {
    signal: controller.signal,
    progress: { report: (p) => send({ type: 'progress', id, ...p }) },
  };
  try {
    const fn = handlers[method] as (p: unknown, c: HandlerContext) => Promise<unknown>;
    if (!fn) throw new Error(`unknown engine method ${method}`);
    const result = await fn(params, ctx);
    send({ type: 'response', id, result });
  } catch (caught) {
    const e = asOutOfMemory(caught, `running ${method}`);
    const message = e instanceof Error ? e.message : String(e);
    send({ type: 'error', id, message, kind: kindOf(e) });
  } finally {
    running.delete(id);
  }
}

process.on('message', (msg: ToEngine) => {
  if (msg.type === 'request') void handle(msg.id, msg.method, msg.params);
  else if (msg.type === 'cancel') running.get(msg.id)?.abort();
});
// The extension host went away: nothing left to serve.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
