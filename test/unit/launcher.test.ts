import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withHugePages } from '../../src/engine/hugePages';
import { expected, fixture, hasFixture } from './helpers/fixtures';

// bin/mechanist.js (the `npx mechanist` entry) restarts itself with glibc's huge-page tunable;
// it runs the built dist/cli.js, which `npm test` builds before the unit tests.
const BIN = path.resolve(__dirname, '../../../bin/mechanist.js');
const TSC_CLI = path.resolve(__dirname, '../../src/cli.js');

/** A preload that logs every node process's pid and GLIBC_TUNABLES to `log`. */
function envLogger(): { log: string; env: NodeJS.ProcessEnv } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-launcher-'));
  const log = path.join(dir, 'env.log');
  const preload = path.join(dir, 'log-env.js');
  fs.writeFileSync(preload, `require('fs').appendFileSync(${JSON.stringify(log)}, process.pid + ' ' + (process.env.GLIBC_TUNABLES || '-') + '\\n');`);
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: `--require "${preload}"` };
  delete env.GLIBC_TUNABLES;
  delete env.MECHANIST_HUGE_PAGES;
  delete env.MECHANIST_RELAUNCHED;
  return { log, env };
}

test('withHugePages adds the tunable on Linux, keeps other tunables, and can be turned off', () => {
  assert.equal(withHugePages({}, 'linux').GLIBC_TUNABLES, 'glibc.malloc.hugetlb=1');
  assert.equal(withHugePages({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, 'linux').GLIBC_TUNABLES, 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
  assert.equal(withHugePages({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, 'linux').GLIBC_TUNABLES, 'glibc.malloc.hugetlb=0');
  assert.equal(withHugePages({ MECHANIST_HUGE_PAGES: '0' }, 'linux').GLIBC_TUNABLES, undefined);
  assert.equal(withHugePages({}, 'darwin').GLIBC_TUNABLES, undefined);
  // Nothing to add: the same object (bin/mechanist.js restarts only when it differs).
  const set = { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' };
  assert.equal(withHugePages(set, 'linux'), set);
});

test('bin/mechanist.js runs the command in a process started with the tunable, with the same output and exit codes', { skip: (process.platform !== 'linux' || !hasFixture('gpt2')) && 'Linux and the gpt2 fixture' }, () => {
  const { log, env } = envLogger();
  const viaBin = spawnSync(process.execPath, [BIN, 'inspect', fixture('gpt2'), '--json'], { encoding: 'utf8', env });
  assert.equal(viaBin.status, 0, viaBin.stderr);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2, 'the launcher and the command');
  assert.match(lines[0], / -$/);
  assert.match(lines[1], / glibc\.malloc\.hugetlb=1$/);
  const direct = spawnSync(process.execPath, [TSC_CLI, 'inspect', fixture('gpt2'), '--json'], { encoding: 'utf8' });
  assert.equal(viaBin.stdout, direct.stdout);

  const bad = spawnSync(process.execPath, [BIN, 'inspect', path.join(os.tmpdir(), 'no-such-model.onnx')], { encoding: 'utf8', env });
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);

  const off = envLogger();
  const plain = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8', env: off.env });
  assert.equal(plain.status, 0);
  assert.equal(fs.readFileSync(off.log, 'utf8').trim().split('\n').length, 1, 'help needs no second process');

  // The restarted process never restarts again, even where glibc empties GLIBC_TUNABLES
  // (a node with file capabilities): it is marked.
  const again = envLogger();
  const marked = spawnSync(process.execPath, [BIN, 'inspect', fixture('gpt2'), '--json'], { encoding: 'utf8', env: { ...again.env, MECHANIST_RELAUNCHED: '1' } });
  assert.equal(marked.status, 0, marked.stderr);
  assert.equal(fs.readFileSync(again.log, 'utf8').trim().split('\n').length, 1, 'no second restart');
});

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  test(`bin/mechanist.js passes ${sig} sent to it alone on: no command is left running`, { skip: (process.platform !== 'linux' || !hasFixture('gpt2')) && 'Linux and the gpt2 fixture' }, async () => {
    const { log, env } = envLogger();
    const p = expected('gpt2').prompt;
    const long = spawn(process.execPath, [BIN, 'trace', fixture('gpt2'), '--prompt', p.text, '--subject', p.subject, '--samples', '400', '--kind', 'all', '--json', '--quiet'], { env, stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => long.on('exit', (code, signal) => r({ code, signal })));
    let childPid = 0;
    for (let i = 0; i < 200 && !childPid; i++) {
      await new Promise((r) => setTimeout(r, 25));
      const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
      if (lines.length === 2) childPid = Number(lines[1].split(' ')[0]);
    }
    assert.ok(childPid, 'the command process started');
    long.kill(sig);
    const { signal } = await exited;
    assert.equal(signal, sig);
    for (let i = 0; i < 100 && alive(childPid); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(alive(childPid), false, 'the command process ended with its launcher');
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
