// Shared by run.mjs (code-server) and electron.mjs (@vscode/test-electron): bundle the
// in-host suite and make the workspace the tests open.
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

/**
 * Bundles test/integration/suite/*.ts into out/integration/suite/ (vscode and mocha stay
 * external; mocha resolves from the repository's node_modules). Returns index.js, the
 * extensionTestsPath module.
 */
export async function bundleSuite(repoRoot) {
  const src = join(repoRoot, 'test', 'integration', 'suite');
  const outdir = join(repoRoot, 'out', 'integration', 'suite');
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: readdirSync(src).filter((f) => f.endsWith('.ts')).map((f) => join(src, f)),
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'inline',
    external: ['vscode', 'mocha'],
    logLevel: 'warning',
  });
  return join(outdir, 'index.js');
}

/** A scratch copy of every test/fixtures/<name>/ that holds a model.onnx (tests may write beside models). */
export function makeWorkspace(repoRoot, dir) {
  mkdirSync(dir, { recursive: true });
  const fixtures = join(repoRoot, 'test', 'fixtures');
  if (existsSync(fixtures)) {
    for (const name of readdirSync(fixtures)) {
      const p = join(fixtures, name);
      if (statSync(p).isDirectory() && existsSync(join(p, 'model.onnx'))) cpSync(p, join(dir, name), { recursive: true });
    }
  }
  return dir;
}
