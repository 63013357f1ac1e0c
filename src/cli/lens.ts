/** `mechanist lens`: the logit lens, every layer's residual stream through the final norm and unembedding. */
import { logitLens } from '../runtime/methods/logitLens';
import { UsageError, numberOption, parse } from './args';
import { COMMON_OPTIONS, openHooked, required } from './common';
import type { CliCommand } from './commands';

export const lensCommand: CliCommand = {
  usage: 'lens <model.onnx> --prompt <text> [--target <text>] [--top K] [--tokenizer <tokenizer.json>] [--batch-rows N] [--json]',
  summary: 'logit lens: top-k tokens and p(answer) per layer and position',
  async run(argv) {
    const { positionals, values: v } = parse(argv, { ...COMMON_OPTIONS, prompt: { type: 'string' }, target: { type: 'string' }, top: { type: 'string' }, 'batch-rows': { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const prompt = required(v.prompt, 'prompt');
    const topK = numberOption('top', v.top, 5);
    if (!Number.isInteger(topK) || topK < 1) throw new UsageError(`--top must be a positive integer, got "${v.top}"`);
    const { hooked, tok } = openHooked(positionals[0], v);
    try {
      const r = await logitLens(hooked, tok!, { prompt, target: v.target, topK, maxBatchRows: v['batch-rows'] === undefined ? undefined : numberOption('batch-rows', v['batch-rows'], 32) });
      if (v.json) {
        const out = { tokens: r.tokens.strings, answer: r.answer, topK: r.topK, layers: r.layers.map((l) => ({ layer: l.layer, top: l.top, pAnswer: l.pAnswer })) };
        process.stdout.write(`${JSON.stringify(out)}\n`);
        return;
      }
      const lines = [`logit lens, p(${JSON.stringify(r.answer.text)}) at the last position, and the top token per position`];
      for (const l of r.layers) {
        const last = l.pAnswer[l.pAnswer.length - 1];
        lines.push(`layer ${String(l.layer).padStart(3)}: p ${last.toFixed(4)} | ${l.top.map((t) => JSON.stringify(t[0].token)).join(' ')}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      await hooked.dispose();
    }
  },
};
