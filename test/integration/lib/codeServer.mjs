// Starts and stops code-server (VS Code in the browser) for tests and `npm start`:
// scratch user data, extensions and HOME, the extension linked in, a free 127.0.0.1 port,
// its own process group so that stop() also ends the extension host.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, writeFileSync, symlinkSync, rmSync, readFileSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** User settings that keep the screen clean and stable for screenshots. */
export const CLEAN_SETTINGS = {
  'workbench.startupEditor': 'none',
  'chat.disableAIFeatures': true,
  'workbench.tips.enabled': false,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'update.mode': 'none',
  'telemetry.telemetryLevel': 'off',
  'workbench.enableExperiments': false,
  'security.workspace.trust.enabled': false,
  'git.enabled': false,
  'files.hotExit': 'off',
  'window.restoreWindows': 'none',
  'workbench.layoutControl.enabled': false,
  'window.commandCenter': false,
};

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Writes the user settings (VS Code watches the file, so a running window picks changes up). */
export function writeUserSettings(userDataDir, settings) {
  const dir = join(userDataDir, 'User');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'settings.json'), JSON.stringify({ ...CLEAN_SETTINGS, ...settings }, null, 2) + '\n');
}

/** Links an extension folder into an extensions dir as <publisher>.<name>-<version>. */
export function linkExtension(extensionsDir, extensionFolder) {
  const pkg = JSON.parse(readFileSync(join(extensionFolder, 'package.json'), 'utf8'));
  const link = join(extensionsDir, `${pkg.publisher}.${pkg.name}-${pkg.version}`);
  mkdirSync(extensionsDir, { recursive: true });
  rmSync(link, { recursive: true, force: true });
  symlinkSync(extensionFolder, link, 'dir');
  return { id: `${pkg.publisher}.${pkg.name}`, link };
}

/**
 * Starts code-server and waits until /healthz answers.
 * @param {object} o
 * @param {string} o.entry code-server's out/node/entry.js
 * @param {string} o.scratch folder for user data, extensions, HOME, TMPDIR (created)
 * @param {string} o.workspace folder to open
 * @param {object} [o.settings] extra user settings
 * @param {string} [o.logFile] where code-server's output goes (default scratch/code-server.log)
 * @param {Record<string,string>} [o.env] extra environment (inherited by the extension host)
 * @param {string[]} [o.args] extra code-server arguments
 * @param {number} [o.port]
 */
export async function startCodeServer(o) {
  const port = o.port ?? (await freePort());
  const dirs = {
    userData: join(o.scratch, 'user-data'),
    extensions: join(o.scratch, 'extensions'),
    home: join(o.scratch, 'home'),
    tmp: join(o.scratch, 'tmp'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  writeUserSettings(dirs.userData, o.settings ?? {});
  const logFile = o.logFile ?? join(o.scratch, 'code-server.log');
  const out = openSync(logFile, 'a');
  const env = {
    ...process.env,
    HOME: dirs.home,
    TMPDIR: dirs.tmp,
    XDG_CACHE_HOME: join(dirs.home, '.cache'),
    XDG_CONFIG_HOME: join(dirs.home, '.config'),
    XDG_DATA_HOME: join(dirs.home, '.local', 'share'),
    ...o.env,
  };
  for (const k of Object.keys(env)) if (/^npm_/i.test(k) || k === 'PASSWORD' || k === 'HASHED_PASSWORD') delete env[k];
  const args = [
    o.entry,
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--user-data-dir', dirs.userData,
    '--extensions-dir', dirs.extensions,
    ...(o.args ?? []),
    o.workspace,
  ];
  // detached: setsid(), so the server, its extension hosts and their children form one process
  // group that stop() kills as a whole.
  const child = spawn(process.execPath, args, { env, cwd: o.scratch, detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  let exited = null;
  const done = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  const url = `http://127.0.0.1:${port}`;
  const server = {
    url,
    port,
    pid: child.pid,
    dirs,
    /** Resolves with { code, signal } when the server process exits. */
    done,
    logFile,
    /** Kills the whole process group (TERM, then KILL); safe to call twice. */
    async stop() {
      if (server.stopped) return;
      server.stopped = true;
      killGroup(child.pid, 'SIGTERM');
      for (let i = 0; i < 30 && groupAlive(child.pid); i++) await sleep(100);
      killGroup(child.pid, 'SIGKILL');
    },
    /** Synchronous kill, for process 'exit' handlers. */
    stopSync() {
      killGroup(child.pid, 'SIGKILL');
    },
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`code-server exited during start (${JSON.stringify(exited)}); see ${logFile}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`code-server did not answer ${url}/healthz within 60 s; see ${logFile}`);
    }
    await sleep(200);
  }
  return server;
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}
