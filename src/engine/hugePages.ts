/**
 * A process environment with glibc's huge-page tunable set, for the engine process (client.ts)
 * and the CLI's restart (bin/mechanist.js, through dist/hugePages.js); `env` itself when there
 * is nothing to add. glibc (2.35+) advises MADV_HUGEPAGE on its large mappings when
 * GLIBC_TUNABLES has `glibc.malloc.hugetlb=1`, and reads the variable only when a process
 * starts. onnxruntime's packed weights and arena are fresh memory, which a VM faults in 4 KiB
 * at a time: a causal trace on the bench model spent about 0.45 s of its 5 s on that.
 * `MECHANIST_HUGE_PAGES=0` leaves the environment as it is.
 */
const TUNABLE = 'glibc.malloc.hugetlb=1';

export function withHugePages(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): NodeJS.ProcessEnv {
  const tunables = env.GLIBC_TUNABLES ?? '';
  if (platform !== 'linux' || env.MECHANIST_HUGE_PAGES === '0' || tunables.includes('glibc.malloc.hugetlb')) return env;
  return { ...env, GLIBC_TUNABLES: tunables ? `${tunables}:${TUNABLE}` : TUNABLE };
}
