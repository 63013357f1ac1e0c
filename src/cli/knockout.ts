/** `mechanist knockout`: attention knockout (Geva et al. 2023) from a target position to source tokens. */
import { attentionKnockout } from '../runtime/methods/attention';
import type { KnockoutSources } from '../runtime/methods/attention';
import { UsageError, numberOption, parse } from './args';
import { intOption } from './attention';
import { COMMON_OPTIONS, openHooked, required, stderrProgress } from './common';
import type { CliCommand } from './commands';

/** Parses `--sources`: `subject`, a span `a:b` (half-open), or indices `i,j,...`. */
export function parseSources(v: string | undefined, subject: string | undefined): KnockoutSources {
  const s = v?.trim() ?? (subject !== undefined ? 'subject' : undefined);
  if (s === undefined) throw new UsageError('--sources is required (subject, a span a:b, or positions i,j,...)');
  if (s === 'subject') {
    if (subject === undefined || subject === '') throw new UsageError('--sources subject needs --subject <text>');
    return { type: 'subject', subject };
  }
  const span = /^(\d+):(\d+)$/.exec(s);
  if (span) return { type: 'span', start: Number(span[1]), end: Number(span[2]) };
  if (s === '') return { type: 'positions', positions: [] };
  const parts = s.split(',').map((x) => x.trim());
  if (!parts.every((x) => /^\d+$/.test(x))) throw new UsageError(`--sources must be subject, a span a:b or positions i,j,..., got "${v}"`);
  return { type: 'positions', positions: parts.map(Number) };
}

export const knockoutCommand: CliCommand = {
  usage:
    'knockout <model.onnx> --prompt <text> --sources subject|<i,j,..>|<a:b> [--subject <text>] [--target <text>] [--from <position>] [--window K] [--tokenizer <tokenizer.json>] [--batch-rows N] [--json]',
  summary: 'attention knockout: block the target position from the sources in a window of layers around each layer; relative change of p(answer)',
  async run(argv) {
    const { positionals, values: v } = parse(argv, {
      ...COMMON_OPTIONS,
      prompt: { type: 'string' },
      target: { type: 'string' },
      sources: { type: 'string' },
      subject: { type: 'string' },
      from: { type: 'string' },
      window: { type: 'string' },
      'batch-rows': { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const prompt = required(v.prompt, 'prompt');
    const sources = parseSources(v.sources, v.subject);
    const window = numberOption('window', v.window, 9);
    if (!Number.isInteger(window) || window < 1) throw new UsageError(`--window must be a positive integer, got "${v.window}"`);
    const from = intOption('from', v.from);
    const { hooked, tok } = openHooked(positionals[0], v);
    const progress = stderrProgress(v.quiet);
    try {
      progress.report({ message: 'knockout sweep' });
      const r = await attentionKnockout(hooked, tok!, { prompt, target: v.target, sources, from, window, maxBatchRows: numberOption('batch-rows', v['batch-rows'], 64) });
      progress.done();
      if (v.json) {
        const out = { answer: r.answer, baseline: r.baseline, relativeChange: r.relativeChange, tokens: r.tokens.strings, from: r.from, sources: r.sources, window: r.window, layers: r.layers };
        process.stdout.write(`${JSON.stringify(out)}\n`);
        return;
      }
      const lines = [
        `p(${JSON.stringify(r.answer.text)}) clean ${r.baseline.toFixed(4)}; blocking ${JSON.stringify(r.tokens.strings[r.from])} (position ${r.from}) from positions ${r.sources.join(', ') || '(none)'}, window ${r.window}`,
        ...r.layers.map((l, i) => `layer ${String(l.layer).padStart(3)} (layers ${l.layers[0]}..${l.layers[1] - 1}): p ${l.p.toFixed(4)}, change ${(r.relativeChange[i] * 100).toFixed(1)}%`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      await hooked.dispose();
    }
  },
};
