#!/usr/bin/env node
// The `mechanist` CLI: the built runtime (dist/cli.js), made by `npm ci` (prepare) or `npm run build`.
'use strict';

// Large buffers on transparent huge pages: glibc (2.35+) advises MADV_HUGEPAGE on its large
// mappings when GLIBC_TUNABLES has glibc.malloc.hugetlb=1, and it reads that variable only
// when a process starts, so the CLI starts itself once more with it set. onnxruntime's packed
// weights and arena are fresh memory that a VM faults in 4 KiB at a time: on this project's
// 2-core VM, `trace --kind all` on the bench model spent about 0.45 s of its 5 s doing that.
// The restart costs one bare node start (about 0.1 s). src/engine/hugePages.ts does the same
// for the VS Code engine process. MECHANIST_HUGE_PAGES=0 turns it off.
const TUNABLE = 'glibc.malloc.hugetlb=1';
const env = process.env;
const cmd = process.argv[2];
if (process.platform === 'linux' && env.MECHANIST_HUGE_PAGES !== '0' && !(env.GLIBC_TUNABLES || '').includes('glibc.malloc.hugetlb') && cmd && !cmd.startsWith('-') && cmd !== 'help') {
  const { spawn } = require('node:child_process');
  const tunables = env.GLIBC_TUNABLES ? `${env.GLIBC_TUNABLES}:${TUNABLE}` : TUNABLE;
  const child = spawn(process.execPath, [...process.execArgv, __filename, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...env, GLIBC_TUNABLES: tunables } });
  // Ctrl-C reaches the whole process group, the child included: this process only waits for
  // it. A signal sent to this process alone is passed on.
  process.on('SIGINT', () => undefined);
  for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    process.stderr.write(`mechanist: could not start: ${e.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
} else {
  require('../dist/cli.js');
}
