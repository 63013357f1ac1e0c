// Shared state of one integration run (set by run.mjs) and openSession(): a code-server
// with the extension loaded, a Chromium page on it, and a screenshot helper. Every session
// is registered so that run.mjs can stop the servers' process groups whatever happens.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startCodeServer, linkExtension } from './codeServer.mjs';
import { launchBrowser, developmentOptionsScript, waitForWorkbench } from './browser.mjs';

/** Filled in by run.mjs before any test runs. */
export const harness = {
  repoRoot: '',
  codeServerEntry: '',
  chromium: '',
  scratch: '',
  workspace: '',
  artifacts: '',
  /** How the extension is loaded: { mode: 'link', folder } or { mode: 'vsix', file }. */
  extension: { mode: 'link', folder: '' },
  /** Environment for code-server and its extension hosts. */
  env: {},
  /** Open sessions, closed by closeAll(). */
  sessions: new Set(),
  /** Sessions' servers, for a synchronous kill on exit. */
  servers: new Set(),
};

export const THEMES = {
  light: 'Default Light Modern',
  dark: 'Default Dark Modern',
};

let counter = 0;

/** `code-server --install-extension file.vsix` into the session's extensions folder. */
function installVsix(scratch, file) {
  const dirs = ['user-data', 'extensions', 'home', 'tmp'].map((d) => join(scratch, d));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const r = spawnSync(
    process.execPath,
    [harness.codeServerEntry, '--user-data-dir', dirs[0], '--extensions-dir', dirs[1], '--install-extension', file, '--force'],
    { env: { ...process.env, HOME: dirs[2], TMPDIR: dirs[3], XDG_CONFIG_HOME: join(dirs[2], '.config'), XDG_DATA_HOME: join(dirs[2], '.local', 'share') }, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`code-server --install-extension ${file} failed:\n${r.stdout}${r.stderr}`);
  const installed = readdirSync(dirs[1]).find((d) => d.startsWith('mechanist.mechanist-'));
  if (!installed) throw new Error(`code-server --install-extension ${file} installed nothing:\n${r.stdout}${r.stderr}`);
  return join(dirs[1], installed);
}

/**
 * Starts a code-server (fresh user data) and opens the workspace in Chromium.
 * @param {object} o
 * @param {string} o.name folder name for this session's scratch files and screenshots
 * @param {'light'|'dark'} [o.theme]
 * @param {string} [o.extensionTestsPath] run this extension test entry in the extension host
 * @param {(code: number, logs: {relativePath: string, contents: string}[]) => void} [o.onExit]
 * @param {(level: string, message: string) => void} [o.onLog]
 */
export async function openSession(o) {
  const scratch = join(harness.scratch, `${String(++counter).padStart(2, '0')}-${o.name}`);
  const shots = join(harness.artifacts, o.name);
  mkdirSync(shots, { recursive: true });
  const theme = o.theme ?? 'light';
  // The extension is in place before the server starts, so that its first scan finds it.
  // The in-host tests run only with a development extension; for the .vsix, that is the
  // installed copy.
  const extensionFolder =
    harness.extension.mode === 'link'
      ? (linkExtension(join(scratch, 'extensions'), harness.extension.folder), harness.extension.folder)
      : installVsix(scratch, harness.extension.file);
  const server = await startCodeServer({
    entry: harness.codeServerEntry,
    scratch,
    workspace: harness.workspace,
    settings: { 'workbench.colorTheme': THEMES[theme] },
    logFile: join(shots, 'code-server.log'),
    env: harness.env,
  });
  harness.servers.add(server);
  const context = await launchBrowser({ executablePath: harness.chromium, profileDir: join(scratch, 'chromium'), colorScheme: theme });
  const consoleLog = join(shots, 'browser-console.log');
  const session = {
    name: o.name,
    theme,
    server,
    context,
    page: undefined,
    shots,
    /** Saves a screenshot of the whole window as <artifacts>/<name>/<nn>-<label>.png. */
    async shot(label) {
      const file = join(shots, `${String(++session.shotCount).padStart(2, '0')}-${label}.png`);
      await session.page.screenshot({ path: file });
      return file;
    },
    shotCount: 0,
    async close() {
      harness.sessions.delete(session);
      try {
        await context.close();
      } catch {
        /* browser already gone */
      }
      await server.stop();
      harness.servers.delete(server);
    },
  };
  harness.sessions.add(session);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    session.page = page;
    page.on('console', (m) => appendFileSync(consoleLog, `[${m.type()}] ${m.text()}\n`));
    page.on('pageerror', (e) => appendFileSync(consoleLog, `[pageerror] ${e.stack ?? e}\n`));
    if (o.extensionTestsPath) {
      await page.addInitScript(developmentOptionsScript({ extensionPaths: [extensionFolder], extensionTestsPath: o.extensionTestsPath }));
    }
    await page.exposeFunction('codeAutomationLog', (level, message) => o.onLog?.(level, String(message)));
    await page.exposeFunction('codeAutomationExit', (code, logs) => {
      for (const l of logs ?? []) {
        try {
          const file = join(shots, 'vscode-logs', l.relativePath.replace(/\.\.+/g, '_'));
          mkdirSync(join(file, '..'), { recursive: true });
          writeFileSync(file, l.contents);
        } catch {
          /* best effort */
        }
      }
      o.onExit?.(code, logs ?? []);
    });
    const url = `${server.url}/?folder=${encodeURIComponent(harness.workspace)}`;
    await page.goto(url);
    await waitForWorkbench(page);
  } catch (e) {
    await session.close();
    throw e;
  }
  return session;
}

/** Closes every open session (browsers, then servers' process groups). */
export async function closeAll() {
  for (const s of [...harness.sessions]) await s.close();
}

/** Kills every server's process group at once, for 'exit' and signal handlers. */
export function killAllSync() {
  for (const s of harness.servers) s.stopSync();
}
