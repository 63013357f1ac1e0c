#!/usr/bin/env node
// Installs code-server (VS Code for the browser, from the npm registry) once into
// .vscode-test/code-server-<version>/, the way @vscode/test-electron caches VS Code builds.
// Used by test/integration/run.mjs and scripts/start.mjs; run it alone to pre-install:
//   node scripts/setup-vscode.mjs
// See /work/shared/E2E.md (or the README) for why each environment variable is needed.
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync, readdirSync, openSync, closeSync, unlinkSync, copyFileSync, chmodSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The code-server release used by the tests (VS Code 1.100.3; its postinstall needs Node 20). */
export const CODE_SERVER_VERSION = '4.100.3';
const NODE_MAJOR = 20;

/** Repository root (the folder holding package.json). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where code-server lives once installed. */
export function codeServerPaths(root = repoRoot, version = CODE_SERVER_VERSION) {
  const dir = join(root, '.vscode-test', `code-server-${version}`);
  const packageDir = join(dir, 'node_modules', 'code-server');
  return {
    dir,
    packageDir,
    entry: join(packageDir, 'out', 'node', 'entry.js'),
    marker: join(dir, '.installed.json'),
    scratch: join(dir, 'scratch'),
    lock: join(dir, '.lock'),
  };
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * Lists what the machine lacks, each as "what (apt package)". `forBrowser` also checks Chromium.
 * An empty list means everything is there.
 */
export function missingPrerequisites({ forInstall = true, forBrowser = false } = {}) {
  const missing = [];
  if (forInstall) {
    const major = Number(process.versions.node.split('.')[0]);
    if (major !== NODE_MAJOR) {
      missing.push(`Node ${NODE_MAJOR} (found ${process.version}; code-server ${CODE_SERVER_VERSION}'s postinstall refuses other versions)`);
    }
    if (!has('npm')) missing.push('npm (apt package: npm, or Node from nodesource)');
    if (!has('krb5-config') && !existsSync('/usr/include/gssapi/gssapi.h')) missing.push('Kerberos headers (apt package: libkrb5-dev)');
    for (const tool of ['make', 'g++', 'cc']) if (!has(tool)) missing.push(`${tool} (apt package: build-essential)`);
    if (!has('python3')) missing.push('python3, for node-gyp (apt package: python3)');
    if (!existsSync('/usr/bin/rg')) missing.push('/usr/bin/rg (apt package: ripgrep)');
  }
  if (forBrowser && !existsSync(chromiumPath())) missing.push(`${chromiumPath()} (apt package: chromium)`);
  return missing;
}

/** The Chromium that playwright-core drives (Debian's, or CHROMIUM_PATH). */
export function chromiumPath() {
  return process.env.CHROMIUM_PATH || '/usr/bin/chromium';
}

/** Node headers for node-gyp, so that it never downloads them. */
function nodeDir() {
  const candidates = [dirname(dirname(process.execPath)), '/usr'];
  return candidates.find((d) => existsSync(join(d, 'include', 'node', 'node.h')));
}

/** An environment for npm with nothing of the calling `npm run` in it and everything code-server needs. */
function installEnv(paths, npmCache) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  const home = join(paths.scratch, 'home');
  const tmp = join(paths.scratch, 'tmp');
  for (const d of [home, tmp]) mkdirSync(d, { recursive: true });
  Object.assign(env, {
    HOME: home,
    TMPDIR: tmp,
    XDG_CACHE_HOME: join(home, '.cache'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    // Reuse the caller's npm download cache; everything else stays in the scratch folder.
    npm_config_cache: npmCache,
    npm_config_userconfig: join(home, '.npmrc'),
    // code-server's postinstall refuses root without it.
    npm_config_unsafe_perm: 'true',
    // node-pty's postinstall runs `npx node-gyp`.
    npm_config_yes: 'true',
    npm_config_ignore_scripts: 'false',
    npm_config_foreground_scripts: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_progress: 'false',
  });
  const nd = nodeDir();
  if (nd) env.npm_config_nodedir = nd;
  return env;
}

/**
 * @vscode/ripgrep before 1.18 downloads rg from GitHub in its postinstall; it first looks in
 * $TMPDIR/vscode-ripgrep-cache-<version>/. Seed that cache with Debian's /usr/bin/rg for the
 * version npm will pick (code-server's lib/vscode has no lockfile). 1.18+ ships rg on npm.
 */
function seedRipgrep(paths, env, log) {
  const vscodeDir = join(paths.packageDir, 'lib', 'vscode');
  let version = readShrinkwrap(vscodeDir)?.packages?.['node_modules/@vscode/ripgrep']?.version;
  if (!version) {
    const range = JSON.parse(readFileSync(join(vscodeDir, 'package.json'), 'utf8')).dependencies?.['@vscode/ripgrep'];
    if (!range) return;
    const parsed = JSON.parse(execFileSync('npm', ['view', `@vscode/ripgrep@${range}`, 'version', '--json'], { env, cwd: paths.dir, encoding: 'utf8' }));
    version = Array.isArray(parsed) ? parsed[parsed.length - 1] : parsed;
  }
  const [maj, min] = version.split('.').map(Number);
  if (maj > 1 || min >= 18) return; // binaries come from npm packages
  const work = join(paths.scratch, 'rg-pack');
  mkdirSync(work, { recursive: true });
  execFileSync('npm', ['pack', `@vscode/ripgrep@${version}`, '--silent'], { env, cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
  const postinstall = execFileSync('tar', ['-xzOf', join(work, tgz), 'package/lib/postinstall.js'], { encoding: 'utf8' });
  const tag = /const VERSION = '([^']+)'/.exec(postinstall)?.[1];
  if (!tag) throw new Error(`cannot find the ripgrep release tag in @vscode/ripgrep@${version}`);
  const cache = join(env.TMPDIR, `vscode-ripgrep-cache-${version}`);
  // The postinstall runs `tar xvf asset -C <package>/bin` and expects `rg` at the top.
  const stage = join(work, 'stage');
  mkdirSync(stage, { recursive: true });
  mkdirSync(cache, { recursive: true });
  copyFileSync('/usr/bin/rg', join(stage, 'rg'));
  chmodSync(join(stage, 'rg'), 0o755);
  const asset = join(cache, `ripgrep-${tag}-x86_64-unknown-linux-musl.tar.gz`);
  execFileSync('tar', ['-czf', asset, '-C', stage, 'rg']);
  log(`seeded @vscode/ripgrep@${version} (${tag}) with /usr/bin/rg`);
}

function readShrinkwrap(dir) {
  for (const f of ['npm-shrinkwrap.json', 'package-lock.json']) {
    if (existsSync(join(dir, f))) return JSON.parse(readFileSync(join(dir, f), 'utf8'));
  }
  return undefined;
}

/** Names that a lockfile marks with hasInstallScript (the packages whose scripts npm runs). */
function scriptedPackages(lock) {
  const names = new Set();
  for (const [loc, meta] of Object.entries(lock?.packages ?? {})) {
    if (loc && meta.hasInstallScript) names.add(loc.slice(loc.lastIndexOf('node_modules/') + 'node_modules/'.length));
  }
  return [...names].sort();
}

/** Adds an npm >= 11.10 `allowScripts` field to a package.json (npm 10 ignores the field). */
function allowScripts(pkgFile, names) {
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
  pkg.allowScripts = Object.fromEntries(names.map((n) => [n, true]));
  writeFileSync(pkgFile, JSON.stringify(pkg, null, 2) + '\n');
  return names;
}

function acquireLock(file, log) {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => { try { unlinkSync(file); } catch { /* gone */ } };
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(file, 'utf8')) || 0;
      let alive = false;
      try { if (pid) { process.kill(pid, 0); alive = true; } } catch { /* dead */ }
      if (!alive) { try { unlinkSync(file); } catch { /* raced */ } continue; }
      if (Date.now() > deadline) throw new Error(`timed out waiting for another install (pid ${pid}, lock ${file})`);
      log(`waiting for another code-server install (pid ${pid})...`);
      spawnSync('sleep', ['5']);
    }
  }
}

/** True when code-server is completely installed in the cache. */
export function isInstalled(paths = codeServerPaths()) {
  if (!existsSync(paths.marker) || !existsSync(paths.entry)) return false;
  try {
    return JSON.parse(readFileSync(paths.marker, 'utf8')).version === CODE_SERVER_VERSION;
  } catch {
    return false;
  }
}

/**
 * Installs code-server unless it is already there. Returns its paths; `entry` is the
 * script to run with the same Node (`node entry.js --bind-addr ...`).
 */
export function ensureCodeServer({ root = repoRoot, log = (m) => console.log(`[setup-vscode] ${m}`) } = {}) {
  const paths = codeServerPaths(root);
  if (isInstalled(paths)) return paths;
  const missing = missingPrerequisites({ forInstall: true });
  if (missing.length) {
    throw new Error(
      `cannot install code-server ${CODE_SERVER_VERSION}; missing:\n  - ${missing.join('\n  - ')}\n` +
        'On Debian/Ubuntu: apt-get install -y libkrb5-dev build-essential python3 ripgrep chromium',
    );
  }
  mkdirSync(paths.dir, { recursive: true });
  const release = acquireLock(paths.lock, log);
  try {
    if (isInstalled(paths)) return paths; // another process finished it meanwhile
    const npmCache = process.env.npm_config_cache || spawnSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8', cwd: paths.dir }).stdout.trim() || join(paths.scratch, 'npm-cache');
    rmSync(join(paths.dir, 'node_modules'), { recursive: true, force: true });
    rmSync(paths.scratch, { recursive: true, force: true });
    rmSync(paths.marker, { force: true });
    const env = installEnv(paths, npmCache);
    const t0 = Date.now();
    log(`installing code-server@${CODE_SERVER_VERSION} into ${paths.dir} (1-3 minutes, more on a busy machine)...`);
    // A small project of its own, so that no npm setting of the repository applies.
    writeFileSync(join(paths.dir, 'package.json'), JSON.stringify({ name: 'code-server-cache', private: true, dependencies: { 'code-server': CODE_SERVER_VERSION } }, null, 2) + '\n');
    writeFileSync(join(paths.dir, '.npmrc'), '');
    // 1. Fetch the package without running scripts, to read what its postinstall will install.
    const npmArgs = ['--no-audit', '--no-fund', '--no-save', '--no-package-lock'];
    let r = spawnSync('npm', ['install', ...npmArgs, '--ignore-scripts'], { env, cwd: paths.dir, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`npm install code-server@${CODE_SERVER_VERSION} failed (exit ${r.status})`);
    seedRipgrep(paths, env, log);
    // 2. Run the install scripts: argon2's build, then code-server's postinstall: nested `npm install`s in lib/vscode and
    //    lib/vscode/extensions that build the native modules (kerberos, node-pty, spdlog...).
    //    npm >= 11.10 skips dependency install scripts unless a project's package.json
    //    allows them (`allowScripts`), and refuses an allow list from the command line or
    //    the environment in project installs. So each of the three projects (this cache,
    //    code-server's lib/vscode and lib/vscode/extensions) gets an allowScripts field
    //    naming exactly the packages its lockfile marks with hasInstallScript, and
    //    strict-allow-scripts makes any other script fail the install instead of being
    //    skipped silently. npm 10 runs every script anyway and ignores both.
    const hidden = join(paths.dir, 'node_modules', '.package-lock.json');
    const allowed = [
      ...allowScripts(join(paths.dir, 'package.json'), [...new Set(['code-server', ...scriptedPackages(existsSync(hidden) ? JSON.parse(readFileSync(hidden, 'utf8')) : undefined)])]),
    ];
    for (const dir of [join(paths.packageDir, 'lib', 'vscode'), join(paths.packageDir, 'lib', 'vscode', 'extensions')]) {
      allowed.push(...allowScripts(join(dir, 'package.json'), scriptedPackages(readShrinkwrap(dir))));
    }
    env.npm_config_strict_allow_scripts = 'true';
    log(`allowing install scripts of: ${[...new Set(allowed)].sort().join(', ')}`);
    r = spawnSync('npm', ['rebuild', '--foreground-scripts'], { env, cwd: paths.dir, stdio: 'inherit' });
    if (r.status !== 0) {
      throw new Error(
        `code-server's postinstall failed (exit ${r.status}); see the output above. ` +
          'It needs: libkrb5-dev, build-essential, python3 (apt) and Node 20 with its headers.',
      );
    }
    for (const p of ['lib/vscode/node_modules/node-pty', 'lib/vscode/node_modules/kerberos', 'lib/vscode/node_modules/@vscode/ripgrep']) {
      if (!existsSync(join(paths.packageDir, p))) throw new Error(`code-server install is incomplete: ${p} is missing`);
    }
    const v = spawnSync(process.execPath, [paths.entry, '--version'], { env, cwd: paths.dir, encoding: 'utf8' });
    if (v.status !== 0 || !v.stdout.includes(CODE_SERVER_VERSION)) {
      throw new Error(`the installed code-server does not start:\n${v.stdout}${v.stderr}`);
    }
    writeFileSync(paths.marker, JSON.stringify({ version: CODE_SERVER_VERSION, node: process.version, seconds: Math.round((Date.now() - t0) / 1000), date: new Date().toISOString() }, null, 2) + '\n');
    rmSync(paths.scratch, { recursive: true, force: true });
    log(`code-server ${CODE_SERVER_VERSION} installed in ${Math.round((Date.now() - t0) / 1000)} s`);
    return paths;
  } finally {
    release();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const p = ensureCodeServer();
    console.log(`[setup-vscode] code-server ${CODE_SERVER_VERSION}: ${p.entry}`);
  } catch (e) {
    console.error(`[setup-vscode] ${e.message}`);
    process.exit(1);
  }
}
