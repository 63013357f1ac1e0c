// Builds every bundle with esbuild: the extension, the engine host process, the CLI
// and the webview scripts. Native modules (onnxruntime-node) and vscode stay external.
import { build } from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const watch = process.argv.includes('--watch');
const common = { bundle: true, sourcemap: true, logLevel: 'warning', minify: false };

const node = {
  ...common,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['vscode', 'onnxruntime-node', 'sharp'],
};

const entries = [
  { entryPoints: ['src/extension.ts'], outfile: 'dist/extension.js' },
  { entryPoints: ['src/engine/host.ts'], outfile: 'dist/host.js' },
  { entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js' },
  // (Read by bin/mechanist.js before it loads the CLI, and by the bench.)
  { entryPoints: ['src/engine/hugePages.ts'], outfile: 'dist/hugePages.js' },
];

// Each webview has its front-end in media/<panel>/main.ts, bundled for the browser.
const webviewEntries = existsSync('media')
  ? readdirSync('media', { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join('media', d.name, 'main.ts')))
      .map((d) => ({ entryPoints: [join('media', d.name, 'main.ts')], outfile: join('dist', 'media', `${d.name}.js`) }))
  : [];

await Promise.all([
  ...entries.map((e) => build({ ...node, ...e })),
  // Webview bundles carry chart.js: minified, they load faster in every panel.
  ...webviewEntries.map((e) => build({ ...common, minify: true, platform: 'browser', target: 'es2022', format: 'iife', ...e })),
]);
if (watch) console.log('watch mode is not supported; run npm run build again');
