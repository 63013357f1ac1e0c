// Bundles benchmark child scripts (TypeScript that imports src/) into out/bench/ with esbuild, as
// the extension's own build does: node 20, CommonJS, native and editor modules left external.
import { mkdirSync } from 'node:fs';
import { build } from 'esbuild';

export async function bundleBenchScripts(entryPoints, outdir) {
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints,
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['vscode', 'onnxruntime-node', 'sharp'],
    logLevel: 'warning',
  });
}
