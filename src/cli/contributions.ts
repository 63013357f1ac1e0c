/** `mechanist contributions`: per-head and per-(head, source) contribution norms to one position's residual stream. */
import { attentionContributions } from '../runtime/methods/attention';
import { UsageError, parse } from './args';
import { intOption } from './attention';
import { COMMON_OPTIONS, openHooked, required } from './common';
import type { CliCommand } from './commands';

export const contributionsCommand: CliCommand = {
  usage: 'contributions <model.onnx> --prompt <text> [--position N] [--tokenizer <tokenizer.json>] [--json]',
  summary: "norms of each head's (and each source token's) contribution to a position's residual stream (default: the last)",
  async run(argv) {
    const { positionals, values: v } = parse(argv, { ...COMMON_OPTIONS, prompt: { type: 'string' }, position: { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const prompt = required(v.prompt, 'prompt');
    const position = intOption('position', v.position);
    const { hooked, tok } = openHooked(positionals[0], v);
    try {
      const r = await attentionContributions(hooked, tok!, { prompt, position });
      if (v.json) {
        const out = { tokens: r.tokens.strings, position: r.position, heads: r.heads, bySource: r.bySource, outputBiasNorm: r.outputBiasNorm };
        process.stdout.write(`${JSON.stringify(out)}\n`);
        return;
      }
      const lines = [`contributions to position ${r.position} (${JSON.stringify(r.tokens.strings[r.position])})`];
      r.heads.forEach((heads, l) => {
        heads.forEach((n, h) => {
          const src = r.bySource[l][h];
          const top = src.map((x, j) => [x, j]).sort((a, b) => b[0] - a[0]).slice(0, 3);
          lines.push(`L${l}H${h}`.padEnd(8) + ` ${n.toFixed(4)}  top sources: ${top.map(([x, j]) => `${JSON.stringify(r.tokens.strings[j])} ${x.toFixed(4)}`).join(', ')}`);
        });
      });
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      await hooked.dispose();
    }
  },
};
