/**
 * Past results of every method, kept as JSON files in the extension's storage folder so the
 * Runs view can list them and a panel can reopen (or be restored after a reload) without
 * recomputing. Each method kind registers how to open its runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

/** What every stored run has; `data` is the method's own result object. */
export interface StoredRun<T = unknown> {
  id: string;
  /** The method: 'trace', 'knockout', 'lens', 'decompose', ... */
  kind: string;
  modelPath: string;
  /** One line for the Runs view. */
  label: string;
  createdAt: string;
  data: T;
}

/** A run's entry in the Runs view. */
export type RunSummary = Omit<StoredRun, 'data'>;

export class RunStore implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private readonly dir: string;
  private readonly openers = new Map<string, (run: StoredRun) => void>();

  constructor(storage: vscode.Uri) {
    this.dir = path.join(storage.fsPath, 'runs');
  }

  /** Saves a new run of `kind` and returns it. */
  add<T>(kind: string, modelPath: string, label: string, data: T): StoredRun<T> {
    const run: StoredRun<T> = { id: newRunId(), kind, modelPath, label, createdAt: new Date().toISOString(), data };
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(path.join(this.dir, `${run.id}.json`), JSON.stringify(run));
    this.changed.fire();
    return run;
  }

  get<T = unknown>(id: string): StoredRun<T> | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, `${path.basename(id)}.json`), 'utf8')) as StoredRun<T>;
    } catch {
      return undefined;
    }
  }

  /** Newest first. */
  list(): RunSummary[] {
    let files: string[];
    try {
      files = fs.readdirSync(this.dir).filter((f) => f.endsWith('.json'));
    } catch {
      return [];
    }
    return files
      .map((f) => this.get(f.slice(0, -5)))
      .filter((r): r is StoredRun => !!r && typeof r.kind === 'string')
      .map(({ id, kind, modelPath, label, createdAt }) => ({ id, kind, modelPath, label, createdAt }))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  delete(id: string): void {
    fs.rmSync(path.join(this.dir, `${path.basename(id)}.json`), { force: true });
    this.changed.fire();
  }

  /** How runs of `kind` are shown again. */
  registerOpener(kind: string, open: (run: StoredRun) => void): vscode.Disposable {
    this.openers.set(kind, open);
    return { dispose: () => this.openers.delete(kind) };
  }

  /** Shows a stored run with its kind's opener; false when the run or the opener is gone. */
  open(id: string): boolean {
    const run = this.get(id);
    const opener = run && this.openers.get(run.kind);
    if (!run || !opener) return false;
    opener(run);
    return true;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/** A new run id (time-ordered, unique enough for one user's storage). */
export function newRunId(): string {
  return `${new Date().toISOString().replace(/[-:.TZ]/g, '')}-${Math.random().toString(36).slice(2, 8)}`;
}
