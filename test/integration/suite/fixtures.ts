// Where the in-host tests find the repository, the fixtures and the CLI.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

/** The repository (run.mjs says; else the bundle's place, out/integration/suite/). */
export function repoRoot(): string {
  return process.env.MECHANIST_REPO_ROOT ?? path.resolve(__dirname, '..', '..', '..');
}

/** A fixture folder holding `file`, as the workspace holds it (run.mjs copies test/fixtures), else the repository's. */
export function fixtureDir(name: string, file = 'model.onnx'): string {
  const candidates = [...(vscode.workspace.workspaceFolders ?? []).map((f) => path.join(f.uri.fsPath, name)), path.join(repoRoot(), 'test', 'fixtures', name)];
  const found = candidates.find((p) => fs.existsSync(path.join(p, file)));
  assert.ok(found, `${name} fixture not found; looked in:\n  ${candidates.join('\n  ')}`);
  return found;
}

/** `mechanist <args> --json`, parsed. */
export function cli<T>(...args: string[]): T {
  const bin = path.join(repoRoot(), 'bin', 'mechanist.js');
  const out = execFileSync(process.execPath, [bin, ...args, '--json', '--quiet'], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, maxBuffer: 64 << 20 });
  return JSON.parse(out) as T;
}

export const EXTENSION_ID = 'mechanist.mechanist';

/** The extension's test API once activated, checked to offer `method`. */
export async function activatedApi<T>(method: string): Promise<T> {
  const ext = vscode.extensions.getExtension<T>(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} is not loaded`);
  const exports = await ext.activate();
  assert.equal(typeof (exports as Record<string, unknown>)[method], 'function', `the API has no ${method}()`);
  return exports;
}
