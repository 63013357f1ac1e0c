/** `mechanist trace`: causal tracing (ROME) of a prompt's subject, JSON or a text heatmap. */
import { causalTrace } from '../runtime/methods/causalTrace';
import type { Corruption, TraceKind, TraceResult } from '../runtime/methods/causalTrace';
import { UsageError, numberOption, parse } from './args';
import { COMMON_OPTIONS, openHooked, required, stderrProgress } from './common';
import type { CliCommand } from './commands';

const KINDS: TraceKind[] = ['residual', 'mlp', 'attn'];

/** Parses `--noise`: a number, or `<k>x` for k x the subject embeddings' std. */
export function parseNoise(v: string | undefined): number | { times: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^([0-9.]+)x$/i.exec(v.trim());
  if (m) return { times: numberOption('noise', m[1], 3) };
  const n = numberOption('noise', v, 0);
  if (n <= 0) throw new UsageError('--noise must be positive');
  return n;
}

export const traceCommand: CliCommand = {
  usage:
    'trace <model.onnx> --prompt <text> --subject <text> [--target <text>] [--corrupt-subject <text> | --noise <number>|<k>x] [--samples N] [--seed N] [--kind residual|mlp|attn|all] [--window W] [--tokenizer <tokenizer.json>] [--batch-rows N] [--json]',
  summary: 'causal trace: restore clean states per (layer, token) after corrupting the subject',
  async run(argv) {
    const { positionals, values: v } = parse(argv, {
      ...COMMON_OPTIONS,
      prompt: { type: 'string' },
      subject: { type: 'string' },
      target: { type: 'string' },
      'corrupt-subject': { type: 'string' },
      noise: { type: 'string' },
      samples: { type: 'string' },
      seed: { type: 'string' },
      kind: { type: 'string' },
      window: { type: 'string' },
      'batch-rows': { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const kindArg = v.kind ?? 'residual';
    const kinds = kindArg === 'all' ? KINDS : [kindArg as TraceKind];
    if (!kinds.every((k) => KINDS.includes(k))) throw new UsageError(`--kind must be residual, mlp, attn or all, got "${kindArg}"`);
    if (v['corrupt-subject'] !== undefined && v.noise !== undefined) throw new UsageError('give either --corrupt-subject or --noise, not both');
    const corruption: Corruption =
      v['corrupt-subject'] !== undefined
        ? { type: 'replace', subject: v['corrupt-subject'] }
        : { type: 'noise', nu: parseNoise(v.noise), samples: numberOption('samples', v.samples, 10), seed: numberOption('seed', v.seed, 1) };
    const { hooked, tok } = openHooked(positionals[0], v);
    const progress = stderrProgress(v.quiet);
    try {
      const results = await causalTrace(
        hooked,
        tok!,
        {
          prompt: required(v.prompt, 'prompt'),
          subject: required(v.subject, 'subject'),
          target: v.target,
          corruption,
          kinds,
          window: numberOption('window', v.window, 10),
          maxBatchRows: numberOption('batch-rows', v['batch-rows'], 64),
        },
        progress,
      );
      progress.done();
      if (v.json) {
        const out = kindArg === 'all' ? Object.fromEntries(results.map((r) => [r.kind, r])) : results[0];
        process.stdout.write(`${JSON.stringify(out)}\n`);
      } else {
        process.stdout.write(results.map(text).join('\n'));
      }
    } finally {
      await hooked.dispose();
    }
  },
};

/** A small text heatmap: tokens down, layers across. */
function text(r: TraceResult): string {
  const shades = ' .:-=+*#%@';
  const span = r.highScore - r.lowScore || 1;
  const lines = [`${r.kind} (window ${r.window}): p(${JSON.stringify(r.answer.text)}) clean ${r.highScore.toFixed(4)}, corrupted ${r.lowScore.toFixed(4)}`];
  r.inputTokens.strings.forEach((s, t) => {
    const mark = t >= r.subjectRange[0] && t < r.subjectRange[1] ? '*' : ' ';
    const cells = r.scores.map((row) => shades[Math.max(0, Math.min(9, Math.round(((row[t] - r.lowScore) / span) * 9)))]).join('');
    lines.push(`${mark}${JSON.stringify(s).padEnd(16)} |${cells}| max ${Math.max(...r.scores.map((row) => row[t])).toFixed(3)}`);
  });
  return `${lines.join('\n')}\n`;
}
