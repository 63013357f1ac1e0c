/** What the CLI's method commands share: opening a hooked model, progress on stderr. */
import { HookedModel } from '../runtime/instrument/hookedModel';
import { openModel } from '../runtime/inspect';
import type { ProviderChoice } from '../runtime/session';
import { TextTokenizer } from '../runtime/tokenizer';
import { UsageError } from './args';

/** Options every method command takes. */
export const COMMON_OPTIONS = {
  json: { type: 'boolean' },
  tokenizer: { type: 'string' },
  provider: { type: 'string' },
  threads: { type: 'string' },
  'cache-dir': { type: 'string' },
  quiet: { type: 'boolean' },
} as const;

export interface CommonValues {
  tokenizer?: string;
  provider?: string;
  threads?: string;
  'cache-dir'?: string;
  quiet?: boolean;
}

/** Opens the model with hooks, and its tokenizer when `withTokenizer`. */
export function openHooked(file: string, v: CommonValues, withTokenizer = true): { hooked: HookedModel; tok?: TextTokenizer } {
  const provider = (v.provider ?? 'auto') as ProviderChoice;
  if (!['auto', 'cpu', 'cuda'].includes(provider)) throw new UsageError(`--provider must be auto, cpu or cuda, got "${v.provider}"`);
  const { model, graph, arch } = openModel(file);
  const hooked = new HookedModel(model, graph, arch, {
    provider,
    threads: v.threads ? Number(v.threads) : undefined,
    cacheDir: v['cache-dir'] ?? process.env.MECHANIST_CACHE_DIR,
  });
  return { hooked, tok: withTokenizer ? TextTokenizer.load(file, v.tokenizer) : undefined };
}

/** Progress lines on stderr (a carriage-return line on a terminal), silent with --quiet. */
export function stderrProgress(quiet?: boolean): { report(p: { fraction?: number; message?: string }): void; done(): void } {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    report(p) {
      if (quiet) return;
      const now = Date.now();
      if (tty && now - last < 100 && (p.fraction ?? 0) < 1) return;
      last = now;
      const pct = p.fraction !== undefined ? `${Math.round(p.fraction * 100)}% ` : '';
      process.stderr.write(tty ? `\r\x1b[K${pct}${p.message ?? ''}` : `${pct}${p.message ?? ''}\n`);
    },
    done() {
      if (!quiet && tty) process.stderr.write('\r\x1b[K');
    },
  };
}

/** Requires a string option. */
export function required(v: string | undefined, name: string): string {
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** The tokenizer given, or the one beside the model, or else beside the encoder (a decoder exported on its own). */
export function loadTokenizer(model: string, encoder: string | undefined, file: string | undefined): TextTokenizer {
  try {
    return TextTokenizer.load(model, file);
  } catch (e) {
    if (file || !encoder) throw e;
    return TextTokenizer.load(encoder);
  }
}
