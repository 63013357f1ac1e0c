#!/usr/bin/env node
// `npm run test:integration`: the extension inside a real VS Code (code-server from npm,
// driven by Debian's Chromium through playwright-core).
//   1. installs code-server into .vscode-test/ once (scripts/setup-vscode.mjs);
//   2. builds the extension and bundles the in-host suite (test/integration/suite) into
//      out/integration/;
//   3. (a) runs the in-host mocha suite in the extension host (developmentOptions injected
//      into the workbench configuration; output and exit code via codeAutomationLog/Exit);
//      (b) runs the UI tests (test/integration/ui/*.test.mjs) that click like a person, in a
//      light and a dark theme, saving screenshots under test/integration/artifacts/;
//   4. always stops every code-server process group; exits non-zero when anything failed.
// Options: --suite-only, --ui-only, --vsix (the packaged .vsix for the in-host suite too; the
// UI tests always use it), --link (the source folder for the UI tests too),
//          --keep (keep the scratch folder), --grep <re> (both layers), --update-docs (copy the
//          README's screenshots, artifacts/screenshots/<panel>-<theme>.png, to docs/ after the run).
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), MECHANIST_IT_TIMEOUT_S (1500, counted from
//              the end of the code-server install), MECHANIST_SUITE_TIMEOUT_S (180),
//              MECHANIST_IT_ARTIFACTS (test/integration/artifacts).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import Mocha from 'mocha';
import { bundleSuite, makeWorkspace } from './lib/prepare.mjs';
import { ensureCodeServer, missingPrerequisites, chromiumPath, repoRoot } from '../../scripts/setup-vscode.mjs';
import { harness, openSession, closeAll, killAllSync } from './lib/harness.mjs';

const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const grep = argv.includes('--grep') ? argv[argv.indexOf('--grep') + 1] : undefined;
const here = join(repoRoot, 'test', 'integration');
// MECHANIST_IT_ARTIFACTS: another folder for screenshots and logs (e.g. so that a run of one
// test does not wipe the artifacts of a full run in progress).
const artifacts = process.env.MECHANIST_IT_ARTIFACTS ? resolve(process.env.MECHANIST_IT_ARTIFACTS) : join(here, 'artifacts');
const totals = { passed: 0, failed: 0 };
const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const log = (m) => console.log(`[integration ${secs()}s] ${m}`);

// Whatever happens, no code-server outlives this process.
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`[integration] ${sig}: stopping code-server`);
    killAllSync();
    if (harness.scratch && !flag('--keep')) rmSync(harness.scratch, { recursive: true, force: true });
    console.log(`${totals.passed} passed, ${totals.failed + 1} failed`);
    process.exit(130);
  });
}


/** `vsce package` into the scratch folder (what `npm run package` makes, .vscodeignore applied). */
function packageVsix(scratch) {
  const file = join(scratch, 'mechanist.vsix');
  const t = Date.now();
  execFileSync(process.execPath, [join(repoRoot, 'node_modules', '@vscode', 'vsce', 'vsce'), 'package', '--allow-missing-repository', '--skip-license', '--no-rewrite-relative-links', '--out', file], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  log(`packaged ${file}: ${(statSync(file).size / 1e6).toFixed(1)} MB in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return file;
}

/** (a) The mocha suite inside the extension host. */
async function runSuite(testsEntry) {
  log('in-host suite: starting code-server');
  const out = join(artifacts, 'suite-output.txt');
  let result; // index.ts's MECHANIST_SUITE_RESULT line
  let exitCode;
  let inSuite = false;
  let onExit;
  const exited = new Promise((resolve) => (onExit = resolve));
  const timeoutMs = Number(process.env.MECHANIST_SUITE_TIMEOUT_S ?? 180) * 1000;
  let session;
  let error;
  try {
    session = await openSession({
      name: 'suite',
      extensionTestsPath: testsEntry,
      onLog: (level, message) => {
        appendFileSync(out, `[${level}] ${message}\n`);
        // Echo the suite's own output (between index.ts's markers) and the workbench's errors.
        const m = /MECHANIST_SUITE_RESULT (\{.*\})/.exec(message);
        if (m) {
          result = JSON.parse(m[1]);
          inSuite = false;
        } else if (message.includes('MECHANIST_SUITE_BEGIN')) inSuite = true;
        else if (inSuite || level === 'error') process.stdout.write(`  | ${message.replace(/\n/g, '\n  | ')}\n`);
      },
      onExit: (code) => {
        exitCode = code;
        onExit();
      },
    });
    let timer;
    const finished = await Promise.race([exited.then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
    clearTimeout(timer);
    if (!finished) error = new Error(`in-host suite did not finish in ${timeoutMs / 1000} s; see ${relative(repoRoot, out)}`);
  } catch (e) {
    error = e;
  } finally {
    if (session) {
      await session.shot('after-suite').catch(() => {});
      await session.close();
    }
  }
  totals.passed += result?.passes ?? 0;
  totals.failed += result?.failures ?? 0;
  if (error) {
    console.error(`[integration] in-host suite: ${error.message}`);
    totals.failed += 1;
  } else if (!result) {
    console.error(`[integration] in-host suite exited with ${exitCode} without a result; see ${relative(repoRoot, out)}`);
    totals.failed += 1;
  } else if (exitCode !== 0 && result.failures === 0) {
    console.error(`[integration] in-host suite exited with ${exitCode}`);
    totals.failed += 1;
  }
  log(`in-host suite: exit code ${exitCode}`);
}

/** (b) UI tests with mocha in this process. */
async function runUi() {
  const files = readdirSync(join(here, 'ui')).filter((f) => /\.test\.m?js$/.test(f)).sort();
  const mocha = new Mocha({ ui: 'bdd', timeout: 120_000, color: true, grep });
  for (const f of files) mocha.addFile(join(here, 'ui', f));
  await mocha.loadFilesAsync();
  const stats = await new Promise((resolve) => {
    const runner = mocha.run(() => resolve(runner.stats));
  });
  totals.passed += stats.passes;
  totals.failed += stats.failures;
  await closeAll();
}

async function main() {
  const missing = missingPrerequisites({ forInstall: false, forBrowser: true });
  if (missing.length) throw Object.assign(new Error(`missing: ${missing.join(', ')}`), { brief: true });
  const cs = ensureCodeServer();
  log(`code-server ready (${relative(repoRoot, cs.dir)})`);
  // The time limit starts once code-server is installed (the first install takes minutes).
  const limitS = Number(process.env.MECHANIST_IT_TIMEOUT_S ?? 1500);
  setTimeout(() => {
    console.error(`[integration] timed out after ${limitS} s; stopping code-server`);
    killAllSync();
    if (harness.scratch && !flag('--keep')) rmSync(harness.scratch, { recursive: true, force: true });
    console.log(`${totals.passed} passed, ${totals.failed + 1} failed`);
    process.exit(1);
  }, limitS * 1000).unref();

  log('building the extension (scripts/build.mjs)');
  execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build.mjs')], { cwd: repoRoot, stdio: 'inherit' });
  log('type-checking and bundling the in-host suite');
  execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(here, 'tsconfig.json')], { cwd: repoRoot, stdio: 'inherit' });
  const testsEntry = await bundleSuite(repoRoot);

  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  // Short, in the system's temp folder: VS Code's IPC socket paths must stay under 107 chars.
  const scratch = mkdtempSync(join(tmpdir(), 'mech-it-'));
  Object.assign(harness, {
    repoRoot,
    codeServerEntry: cs.entry,
    chromium: chromiumPath(),
    scratch,
    workspace: makeWorkspace(repoRoot, join(scratch, 'workspace')),
    artifacts,
    // The in-host suite loads the extension from the source folder; the UI tests use the
    // packaged .vsix, installed as a user would (--link: the source folder for both, faster;
    // --vsix: the .vsix for both).
    extension: flag('--vsix') ? { mode: 'vsix', file: packageVsix(scratch) } : { mode: 'link', folder: repoRoot },
    env: {
      MECHANIST_REPO_ROOT: repoRoot,
      ...(grep ? { MECHANIST_TEST_GREP: grep } : {}),
    },
  });
  if (!existsSync(join(harness.workspace, 'gpt2', 'model.onnx'))) {
    log('warning: test/fixtures/gpt2/model.onnx is missing; tests that need it will fail');
  }
  writeFileSync(join(artifacts, 'suite-output.txt'), '');
  try {
    if (!flag('--ui-only')) await runSuite(testsEntry);
    if (!flag('--suite-only')) {
      if (harness.extension.mode === 'link' && !flag('--link')) harness.extension = { mode: 'vsix', file: packageVsix(scratch) };
      await runUi();
    }
  } finally {
    await closeAll();
    if (flag('--keep')) log(`scratch kept in ${scratch}`);
    else rmSync(scratch, { recursive: true, force: true });
  }
}

/** --update-docs: the README's screenshots from this run's artifacts/screenshots/ into docs/. */
function updateDocs() {
  const from = join(artifacts, 'screenshots');
  const shots = existsSync(from) ? readdirSync(from).filter((f) => f.endsWith('.png')) : [];
  for (const f of shots) copyFileSync(join(from, f), join(repoRoot, 'docs', `screenshot-${f}`));
  log(`--update-docs: ${shots.length} screenshots copied to docs/${shots.length ? ` (${shots.join(', ')})` : ''}`);
}

let code = 0;
try {
  await main();
} catch (e) {
  console.error(`[integration] ${e.brief || /^cannot install code-server/.test(e.message) ? e.message : (e.stack ?? e.message)}`);
  totals.failed += 1;
}
killAllSync();
if (totals.failed > 0) code = 1;
if (flag('--update-docs')) updateDocs();
log(`done; screenshots and logs in ${relative(repoRoot, artifacts)}/`);
console.log(`${totals.passed} passed, ${totals.failed} failed`);
process.exit(code);
