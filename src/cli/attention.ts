/** `mechanist attention`: the softmax attention patterns of a layer's heads for a prompt. */
import { InputError } from '../runtime/feeds';
import { attentionPatterns } from '../runtime/methods/attention';
import { UsageError, parse } from './args';
import { COMMON_OPTIONS, openHooked, required } from './common';
import type { CliCommand } from './commands';

/** Parses an integer option (negative allowed), or throws a UsageError naming it. */
export function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got "${v}"`);
  return n;
}

export const attentionCommand: CliCommand = {
  usage: 'attention <model.onnx> --prompt <text> --layer L [--head H] [--tokenizer <tokenizer.json>] [--json]',
  summary: 'attention patterns [head][query][key] of one layer (query heads for grouped-KV models)',
  async run(argv) {
    const { positionals, values: v } = parse(argv, { ...COMMON_OPTIONS, prompt: { type: 'string' }, layer: { type: 'string' }, head: { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const prompt = required(v.prompt, 'prompt');
    const layer = intOption('layer', required(v.layer, 'layer'))!;
    const head = intOption('head', v.head);
    const { hooked, tok } = openHooked(positionals[0], v);
    try {
      const L = hooked.arch.layers;
      const l = layer < 0 ? L + layer : layer;
      const r = await attentionPatterns(hooked, tok!, { prompt, layers: [l] });
      const all = r.layers[0].patterns;
      const H = all.length;
      const h = head === undefined ? undefined : head < 0 ? H + head : head;
      if (h !== undefined && (h < 0 || h >= H)) throw new InputError(`head ${head} does not exist: layer ${l} has heads 0..${H - 1}`);
      const heads = h === undefined ? all.map((_, i) => i) : [h];
      const patterns = heads.map((i) => all[i]);
      if (v.json) {
        process.stdout.write(`${JSON.stringify({ layer: l, heads, tokens: r.tokens.strings, ids: r.tokens.ids, patterns })}\n`);
        return;
      }
      const lines: string[] = [];
      patterns.forEach((p, i) => {
        lines.push(`layer ${l} head ${heads[i]} (rows: query, columns: key)`);
        p.forEach((row, q) => lines.push(`${JSON.stringify(r.tokens.strings[q]).padEnd(16)} ${row.map((x) => x.toFixed(2)).join(' ')}`));
      });
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      await hooked.dispose();
    }
  },
};
