/** `mechanist localize`: LocoGen cross-attention localization, which window of cross-attention layers carries an attribute. */
import { findCrossAttention } from '../runtime/instrument/crossAttention';
import { openModel } from '../runtime/inspect';
import { localize } from '../runtime/methods/localize';
import { UsageError, numberOption, parse } from './args';
import { COMMON_OPTIONS, loadTokenizer, openHooked, required, stderrProgress } from './common';
import type { CliCommand } from './commands';

export const localizeCommand: CliCommand = {
  usage:
    'localize <model.onnx> [--encoder <encoder.onnx>] --prompt <text> --target-prompt <text> [--decoder-prompt <text>] [--answer <token>] [--window W] [--decoder-start <id>] [--tokenizer <tokenizer.json>] [--batch-rows N] [--json]',
  summary: 'cross-attention localization (LocoGen): score each window of W consecutive cross-attention layers fed the target prompt\'s conditioning by p(answer)',
  async run(argv) {
    const { positionals, values: v } = parse(argv, {
      ...COMMON_OPTIONS,
      encoder: { type: 'string' },
      prompt: { type: 'string' },
      'target-prompt': { type: 'string' },
      'decoder-prompt': { type: 'string' },
      answer: { type: 'string' },
      window: { type: 'string' },
      'decoder-start': { type: 'string' },
      'batch-rows': { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const prompt = required(v.prompt, 'prompt');
    const targetPrompt = required(v['target-prompt'], 'target-prompt');
    const window = numberOption('window', v.window, 3);
    if (!Number.isInteger(window) || window < 1) throw new UsageError(`--window must be a positive integer, got "${v.window}"`);
    const decoderStart = v['decoder-start'] === undefined ? undefined : numberOption('decoder-start', v['decoder-start'], 0);
    if (decoderStart !== undefined && (!Number.isInteger(decoderStart) || decoderStart < 0)) throw new UsageError(`--decoder-start must be a token id, got "${v['decoder-start']}"`);
    const { hooked } = openHooked(positionals[0], v, false);
    try {
      // Structure first: a model without cross-attention fails here, before anything else is read.
      findCrossAttention(hooked.graph, hooked.arch);
      const encoder = v.encoder ? openModel(v.encoder) : undefined;
      const tok = loadTokenizer(positionals[0], v.encoder, v.tokenizer);
      const progress = stderrProgress(v.quiet);
      const r = await localize(
        hooked,
        tok,
        { prompt, targetPrompt, decoderPrompt: v['decoder-prompt'], answer: v.answer, window, decoderStart, maxBatchRows: numberOption('batch-rows', v['batch-rows'], 64) },
        { encoder: encoder && { model: encoder.model, graph: encoder.graph } },
        progress,
      );
      progress.done();
      if (v.json) {
        const out = {
          layers: r.layers,
          window: r.window,
          scores: r.scores,
          best: r.best,
          complement: r.complement,
          baseline: r.baseline,
          metric: r.metric,
          answer: r.answer,
          originalAnswer: r.originalAnswer,
          modules: r.modules,
        };
        process.stdout.write(`${JSON.stringify(out)}\n`);
        return;
      }
      const what = r.metric === 'probability' ? `p(${JSON.stringify(r.answer!.text)})` : 'cosine similarity with the target output';
      const lines = [
        `${what}: original conditioning everywhere ${r.baseline.original.toFixed(4)}, target everywhere ${r.baseline.target.toFixed(4)}; windows of ${r.window} cross-attention layers on the target (complement: all but the window)`,
        ...r.scores.map((s, i) => `${i === r.best.start ? '*' : ' '} ${r.layers.slice(i, i + r.window).join(', ')}: ${s.toFixed(4)} (complement ${r.complement[i].toFixed(4)})`),
        `best window: ${r.best.layers.join(', ')}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      await hooked.dispose();
    }
  },
};
