#!/usr/bin/env node
// `npm start`: builds the extension, then opens it on samples/:
//   - in desktop VS Code (`code --extensionDevelopmentPath=<repo> samples`) when `code` is on PATH;
//   - else in code-server (VS Code in the browser, installed once into .vscode-test/), with the
//     extension linked into a scratch extensions folder; open the printed URL in a browser.
// Options: --browser (use code-server even when `code` exists), --port N (default: a free one).
// After changing the sources: `npm run build`, then "Developer: Reload Window".
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureCodeServer, repoRoot } from './setup-vscode.mjs';
import { startCodeServer, linkExtension } from '../test/integration/lib/codeServer.mjs';

const argv = process.argv.slice(2);
const portArg = argv.includes('--port') ? Number(argv[argv.indexOf('--port') + 1]) : undefined;

console.log('[start] building the extension');
execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build.mjs')], { cwd: repoRoot, stdio: 'inherit' });
const samples = join(repoRoot, 'samples');
mkdirSync(samples, { recursive: true });

const hasCode = spawnSync('sh', ['-c', 'command -v code'], { stdio: 'ignore' }).status === 0;
if (hasCode && !argv.includes('--browser')) {
  console.log(`[start] opening desktop VS Code: code --extensionDevelopmentPath=${repoRoot} ${samples}`);
  const r = spawnSync('code', [`--extensionDevelopmentPath=${repoRoot}`, samples], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const cs = ensureCodeServer();
// User data persists between runs (.vscode-test/start/); TMPDIR is short, for VS Code's sockets.
const scratch = join(repoRoot, '.vscode-test', 'start');
const tmp = mkdtempSync(join(tmpdir(), 'mech-start-'));
const { id } = linkExtension(join(scratch, 'extensions'), repoRoot);
const port = portArg ?? (process.env.PORT ? Number(process.env.PORT) : undefined);
const server = await startCodeServer({
  entry: cs.entry,
  scratch,
  workspace: samples,
  port,
  env: { TMPDIR: tmp, MECHANIST_REPO_ROOT: repoRoot },
  logFile: join(scratch, 'code-server.log'),
});
const url = `${server.url}/?folder=${encodeURIComponent(samples).replace(/%2F/g, '/')}`;
console.log(`[start] code-server ${server.url} (pid ${server.pid}, log ${join(scratch, 'code-server.log')})`);
console.log(`[start] extension ${id} linked from ${repoRoot}`);
console.log(`[start] open ${url}`);
console.log('[start] Ctrl+C stops the server and its process group');

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  await server.stop();
  rmSync(tmp, { recursive: true, force: true });
  process.exit(code);
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
process.on('SIGHUP', () => stop(0));
process.on('exit', () => server.stopSync());
const ended = await server.done;
if (!stopping) {
  console.error(`[start] code-server exited (${JSON.stringify(ended)}); see ${join(scratch, 'code-server.log')}`);
  await stop(1);
}
if (existsSync(tmp)) rmSync(tmp, { recursive: true, force: true });
