/**
 * Past results, kept as JSON files in the extension's storage folder so the Runs view can
 * list them and a panel can reopen (or be restored after a reload) without recomputing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TraceRun } from './webviews/trace/protocol';

/** A run's entry in the Runs view. */
export interface RunSummary {
  id: string;
  kind: 'trace';
  modelPath: string;
  label: string;
  createdAt: string;
}

export class RunStore implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private readonly dir: string;

  constructor(storage: vscode.Uri) {
    this.dir = path.join(storage.fsPath, 'runs');
  }

  /** Saves a run and returns it. */
  add(run: TraceRun): TraceRun {
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(path.join(this.dir, `${run.id}.json`), JSON.stringify(run));
    this.changed.fire();
    return run;
  }

  get(id: string): TraceRun | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, `${path.basename(id)}.json`), 'utf8')) as TraceRun;
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
      .filter((r): r is TraceRun => !!r)
      .map((r) => ({ id: r.id, kind: 'trace' as const, modelPath: r.modelPath, label: `${r.subject} → ${r.results[0]?.answer.text ?? '?'}`, createdAt: r.createdAt }))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  delete(id: string): void {
    fs.rmSync(path.join(this.dir, `${path.basename(id)}.json`), { force: true });
    this.changed.fire();
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/** A new run id (time-ordered, unique enough for one user's storage). */
export function newRunId(): string {
  return `${new Date().toISOString().replace(/[-:.TZ]/g, '')}-${Math.random().toString(36).slice(2, 8)}`;
}
