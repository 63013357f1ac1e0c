#!/usr/bin/env node
// `npm run test:electron`: the in-host suite (test/integration/suite) in desktop VS Code,
// downloaded by @vscode/test-electron into .vscode-test/. For contributors with network
// access; on machines that reach only the npm registry, use `npm run test:integration`
// (code-server), which runs the same suite.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runTests } from '@vscode/test-electron';
import { repoRoot } from '../../scripts/setup-vscode.mjs';
import { bundleSuite, makeWorkspace } from './lib/prepare.mjs';

execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build.mjs')], { cwd: repoRoot, stdio: 'inherit' });
const testsEntry = await bundleSuite(repoRoot);

// The same workspace as the code-server run: a scratch copy of the fixtures.
const scratch = join(repoRoot, '.vscode-test', 'electron-run');
rmSync(scratch, { recursive: true, force: true });
const workspace = makeWorkspace(repoRoot, join(scratch, 'workspace'));
mkdirSync(join(scratch, 'tmp'), { recursive: true });

try {
  await runTests({
    version: process.env.VSCODE_TEST_VERSION ?? 'stable',
    extensionDevelopmentPath: repoRoot,
    extensionTestsPath: testsEntry,
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust', '--user-data-dir', join(scratch, 'user-data')],
    extensionTestsEnv: { MECHANIST_REPO_ROOT: repoRoot, TMPDIR: join(scratch, 'tmp') },
  });
} catch (e) {
  console.error(`[test:electron] ${e instanceof Error ? e.message : e}`);
  process.exit(1);
}
