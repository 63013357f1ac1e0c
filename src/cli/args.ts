/** Argument parsing for the CLI's commands (node:util parseArgs with one-line errors). */
import { parseArgs } from 'node:util';

/** A mistake in the command line (exit code 2). */
export class UsageError extends Error {}

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/** Parses `argv` against `options`; returns positionals and values. */
export function parse<T extends OptionSpec>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
}

/** Parses a number option, or throws a UsageError naming it. */
export function numberOption(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
}
