// Command-line flags of the benchmark scripts: `--name`, `--name value` or `--name=value`.
export function benchArgs(argv = process.argv.slice(2)) {
  const flag = (n) => argv.includes(`--${n}`);
  const opt = (n, d) => {
    const i = argv.findIndex((a) => a === `--${n}` || a.startsWith(`--${n}=`));
    if (i < 0) return d;
    return argv[i].includes('=') ? argv[i].split('=')[1] : argv[i + 1];
  };
  return { flag, opt };
}
