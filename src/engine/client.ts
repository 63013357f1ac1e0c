/**
 * The extension's side of the engine: starts host.js on first use, sends typed requests,
 * relays progress and cancellation, and restarts the process if it dies. No `vscode`
 * import, so it is unit-tested under node:test.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { ErrorKind, FromEngine, Method, Params, Result, ToEngine } from './protocol';
import { withHugePages } from './hugePages';

/** An error reported by the engine, with its kind (model, input, cancelled, internal). */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly kind: ErrorKind,
  ) {
    super(message);
  }
}

/** Anything that can say "cancel": VS Code's CancellationToken fits. */
export interface CancelSource {
  isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): void };
}

export interface RequestOptions {
  onProgress?(p: { fraction?: number; message?: string }): void;
  cancel?: CancelSource;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: RequestOptions['onProgress'];
}

export class EngineClient {
  private child?: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    /** Path of the built host.js. */
    private readonly hostScript: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** True once the engine process has been started (it starts on the first request). */
  get started(): boolean {
    return !!this.child;
  }

  request<M extends Method>(method: M, params: Params<M>, opts: RequestOptions = {}): Promise<Result<M>> {
    if (opts.cancel?.isCancellationRequested) return Promise.reject(new EngineError('cancelled', 'cancelled'));
    const child = this.ensure();
    const id = this.nextId++;
    return new Promise<Result<M>>((resolve, reject) => {
      const sub = opts.cancel?.onCancellationRequested(() => this.post(child, { type: 'cancel', id }));
      const done = (): void => sub?.dispose();
      this.pending.set(id, {
        resolve: (v) => (done(), resolve(v as Result<M>)),
        reject: (e) => (done(), reject(e)),
        onProgress: opts.onProgress,
      });
      this.post(child, { type: 'request', id, method, params });
    });
  }

  /** Stops the engine process; pending requests fail. */
  dispose(): void {
    const c = this.child;
    this.child = undefined;
    if (c && c.exitCode === null) c.kill();
    this.failAll('the engine was stopped');
  }

  private ensure(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(this.hostScript, [], {
      env: withHugePages(this.env),
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      execArgv: [],
      serialization: 'advanced',
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.on('message', (m: FromEngine) => this.onMessage(m));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      const last = stderr.trim().split('\n').pop();
      // SIGKILL that nobody here sent: on Linux, almost always the kernel's out-of-memory killer.
      const why = signal === 'SIGKILL' ? 'was killed (SIGKILL), most likely by the system because memory ran out' : `exited (${signal ?? `code ${code}`})`;
      this.failAll(`the engine process ${why}${last ? `: ${last}` : ''}; the next request starts a new one`, signal === 'SIGKILL' ? 'memory' : 'internal');
    });
    this.child = child;
    return child;
  }

  private post(child: ChildProcess, msg: ToEngine): void {
    if (child.connected) child.send(msg);
  }

  private onMessage(m: FromEngine): void {
    if (m.type === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') p.onProgress?.({ fraction: m.fraction, message: m.message });
    else {
      this.pending.delete(m.id);
      if (m.type === 'response') p.resolve(m.result);
      else p.reject(new EngineError(m.message, m.kind));
    }
  }

  private failAll(message: string, kind: ErrorKind = 'internal'): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new EngineError(message, kind));
    }
  }
}
