/**
 * The webview side of the request/response carrier (src/webviews/shared/rpc.ts): typed requests
 * with ids, answered by the host's `{type: 'response', id, result | error}`; other messages
 * (e.g. `{type: 'update'}`) go to the panel's own listener.
 */
import type { RequestEnvelope, ResponseEnvelope } from '../../src/webviews/shared/rpc';

/** What `acquireVsCodeApi()` returns in a webview. */
export interface VsCodeApi<S> {
  postMessage(message: unknown): void;
  getState(): S | undefined;
  setState(state: S): S;
}

declare function acquireVsCodeApi<S>(): VsCodeApi<S>;

let api: VsCodeApi<unknown> | undefined;

/** The webview's one VS Code API object (acquireVsCodeApi may be called only once per page). */
export function vscodeApi<S>(): VsCodeApi<S> {
  api ??= acquireVsCodeApi<unknown>();
  return api as VsCodeApi<S>;
}

/** A request union (`{method: ...}`) and the result type of each method. */
export type Results<R extends { method: string }> = { [M in R['method']]: unknown };

/** Typed requests to the host: `request({method: 'ready'})` resolves with the host's result. */
export interface Rpc<R extends { method: string }, Res extends Results<R>> {
  request<M extends R['method']>(request: Extract<R, { method: M }>): Promise<Res[M]>;
  /** Messages from the host that are not responses (pushes such as `{type: 'update'}`). */
  onPush(listener: (message: { type: string }) => void): void;
}

/** Starts listening for host messages and returns the typed request function. */
export function createRpc<R extends { method: string }, Res extends Results<R>>(vscode: VsCodeApi<unknown> = vscodeApi()): Rpc<R, Res> {
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners: ((message: { type: string }) => void)[] = [];
  window.addEventListener('message', (event: MessageEvent<unknown>) => {
    const msg = event.data;
    if (!msg || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') return;
    if ((msg as { type: string }).type === 'response') {
      const res = msg as ResponseEnvelope;
      const p = pending.get(res.id);
      if (!p) return;
      pending.delete(res.id);
      if (res.error !== undefined) p.reject(new Error(res.error));
      else p.resolve(res.result);
      return;
    }
    for (const l of listeners) l(msg as { type: string });
  });
  return {
    request<M extends R['method']>(request: Extract<R, { method: M }>): Promise<Res[M]> {
      const id = nextId++;
      const envelope: RequestEnvelope<R> = { type: 'request', id, request };
      return new Promise<Res[M]>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        vscode.postMessage(envelope);
      });
    },
    onPush(listener) {
      listeners.push(listener);
    },
  };
}
