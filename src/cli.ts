/**
 * `mechanist <command> ...`: the runtime, headless, JSON on stdout. Errors: one line on
 * stderr and exit code 1 (2 for usage errors).
 */
import { COMMANDS } from './cli/commands';
import { UsageError } from './cli/args';
import { asOutOfMemory } from './runtime/memory';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`mechanist: unknown command "${name}"; try: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (caught) {
    if (caught instanceof UsageError) {
      process.stderr.write(`mechanist ${name}: ${caught.message} (usage: mechanist ${cmd.usage})\n`);
      return 2;
    }
    const e = asOutOfMemory(caught, `running ${name}`);
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`mechanist ${name}: ${msg.split('\n')[0]}\n`);
    if (process.env.MECHANIST_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}

function usage(): string {
  return `mechanist: mechanistic interpretability for ONNX models\n\n${Object.values(COMMANDS)
    .map((c) => `  mechanist ${c.usage}\n      ${c.summary}`)
    .join('\n')}\n`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`mechanist: ${String(e)}\n`);
    process.exitCode = 1;
  },
);

// `mechanist inspect m.onnx --json | head` closes the pipe early: not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
});
