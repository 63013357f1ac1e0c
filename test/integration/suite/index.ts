// Entry of the in-host test suite (the `extensionTestsPath` module): VS Code's extension
// host calls run() once the extension under test is loaded; it runs every *.test.js next to
// this file with mocha and rejects when a test fails. The same module serves code-server
// (test/integration/run.mjs) and @vscode/test-electron (test/integration/electron.mjs).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { format } from 'node:util';
import Mocha from 'mocha';

/** Runs the suite; resolves when every test passed. */
export async function run(): Promise<void> {
  const mocha = new Mocha({
    ui: 'bdd',
    color: false,
    timeout: Number(process.env.MECHANIST_TEST_TIMEOUT_MS ?? 60_000),
    grep: process.env.MECHANIST_TEST_GREP || undefined,
  });
  const files = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.test.js'))
    .sort();
  for (const f of files) mocha.addFile(path.join(__dirname, f));
  // The workbench forwards the extension host's console output without applying format
  // strings, and VS Code makes console.log read-only there; mocha's reporters print through
  // Base.consoleLog with '%s' templates, so format before printing.
  Mocha.reporters.Base.consoleLog = (...args: unknown[]) => console.log(format(...args));
  // The markers let the code-server runner pick the suite's output out of the workbench log.
  console.log('MECHANIST_SUITE_BEGIN');
  const failures = await new Promise<number>((resolve, reject) => {
    try {
      const runner = mocha.run((n) => resolve(n));
      runner.on('end', () => {
        // One machine-readable line, read by test/integration/run.mjs for its totals.
        console.log(`MECHANIST_SUITE_RESULT ${JSON.stringify({ passes: runner.stats?.passes ?? 0, failures: runner.stats?.failures ?? 0, pending: runner.stats?.pending ?? 0 })}`);
      });
    } catch (e) {
      reject(e);
    }
  });
  if (failures > 0) throw new Error(`${failures} in-host test(s) failed`);
}
