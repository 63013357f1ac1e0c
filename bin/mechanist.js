#!/usr/bin/env node
// The `mechanist` CLI: the built runtime (dist/cli.js), made by `npm ci` (prepare) or `npm run build`.
'use strict';

// Large buffers on transparent huge pages: glibc (2.35+) advises MADV_HUGEPAGE on its large
// mappings when GLIBC_TUNABLES has glibc.malloc.hugetlb=1, and it reads that variable only
// when a process starts, so the CLI starts itself once more with it set (src/engine/hugePages.ts
// says when, for the engine process too). onnxruntime's packed weights and arena are fresh
// memory that a VM faults in 4 KiB at a time: on this project's 2-core VM, `trace --kind all`
// on the bench model spent about 0.45 s of its 5 s doing that. The restart costs one bare node
// start (about 0.1 s). MECHANIST_HUGE_PAGES=0 turns it off.
const { withHugePages } = require('../dist/hugePages.js');
const env = process.env;
const relaunchEnv = withHugePages(env);
const cmd = process.argv[2];
// Not again in the restarted process (glibc empties GLIBC_TUNABLES for a node with file
// capabilities or setuid, so the variable itself cannot tell), not under a debugger (both
// processes would take its port), not for help.
const debugging = process.execArgv.some((a) => a.startsWith('--inspect') || a.startsWith('--debug'));
if (relaunchEnv !== env && !env.MECHANIST_RELAUNCHED && !debugging && cmd && !cmd.startsWith('-') && cmd !== 'help') {
  const { spawn } = require('node:child_process');
  const { constants } = require('node:os');
  const child = spawn(process.execPath, [...process.execArgv, __filename, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...relaunchEnv, MECHANIST_RELAUNCHED: '1' } });
  // Signals sent to this process are passed on (Ctrl-C reaches the child through the process
  // group as well; the CLI has no handler, so a second SIGINT changes nothing).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    process.stderr.write(`mechanist: could not start: ${e.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (!signal) process.exit(code ?? 1);
    // End the way the command ended, or with the shell's code for it if the signal is ignored here.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    setTimeout(() => process.exit(128 + (constants.signals[signal] ?? 0)), 100);
  });
} else {
  require('../dist/cli.js');
}
