/** The progress notification every method command runs its engine request under. */
import * as vscode from 'vscode';
import type { RequestOptions } from '../engine/client';
import { EngineError } from '../engine/client';

/**
 * Runs an engine request under a cancellable progress notification (the engine's fractions as
 * increments). Undefined when the user cancelled (an information message, with `cancelNote`) or
 * the engine refused (its one-line error, shown). Every command that runs a method goes through it.
 */
export async function withEngineProgress<T>(title: string, what: string, run: (opts: RequestOptions) => Promise<T>, cancelNote?: string): Promise<T | undefined> {
  try {
    return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) => {
      let done = 0;
      return run({
        cancel: token,
        onProgress: (p) => {
          const increment = p.fraction !== undefined ? Math.max(0, p.fraction * 100 - done) : undefined;
          if (p.fraction !== undefined) done = Math.max(done, p.fraction * 100);
          progress.report({ message: p.message, increment });
        },
      });
    });
  } catch (e) {
    if (e instanceof EngineError && e.kind === 'cancelled') {
      void vscode.window.showInformationMessage(`Mechanist: ${what} cancelled${cancelNote ? `; ${cancelNote}` : ''}.`);
      return undefined;
    }
    void vscode.window.showErrorMessage(`Mechanist: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}
