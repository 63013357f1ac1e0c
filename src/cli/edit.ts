/** `mechanist edit`: closed-form concept edit of one linear weight, written to a new model file. */
import * as fs from 'node:fs';
import { InputError } from '../runtime/feeds';
import { openModel } from '../runtime/inspect';
import { conceptEdit } from '../runtime/methods/edit';
import type { EditResult, KeyPositions } from '../runtime/methods/edit';
import { UsageError, numberOption, parse } from './args';
import { COMMON_OPTIONS, loadTokenizer, openHooked, required, stderrProgress } from './common';
import type { CliCommand } from './commands';

/** Reads a file of lines (templates or prompts), skipping blank lines and `#` comments. */
function lines(file: string | undefined, what: string): string[] | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`cannot read the ${what} file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const out = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (!out.length) throw new InputError(`the ${what} file ${file} has no lines`);
  return out;
}

export const editCommand: CliCommand = {
  usage:
    'edit <model.onnx> --layer <blocks.L.mlp|blocks.L.attn[.q|k|v]|blocks.L.cross_attn.k|v|kv|weight name|auto>[,<another>...] --source <concept> --target <concept> --out <edited.onnx> [--templates <file>] [--lambda X] [--positions last|last-and-after] [--unrelated <file>] [--preserve <file>] [--preserve-weight X] [--encoder <encoder.onnx>] [--decoder-prompt <text>] [--decoder-start <id>] [--backend auto|js|ort] [--samples N] [--window W] [--json]',
  summary:
    'closed-form concept edit: make the model treat a source concept like a target concept (new file; the original is untouched); several layers (comma-separated) are edited into one file; on an encoder-decoder the templates are encoder prompts and the decoder\'s answer after --decoder-prompt is checked',
  async run(argv) {
    const { positionals, values: v } = parse(argv, {
      ...COMMON_OPTIONS,
      layer: { type: 'string' },
      source: { type: 'string' },
      target: { type: 'string' },
      templates: { type: 'string' },
      lambda: { type: 'string' },
      positions: { type: 'string' },
      unrelated: { type: 'string' },
      preserve: { type: 'string' },
      'preserve-weight': { type: 'string' },
      out: { type: 'string' },
      backend: { type: 'string' },
      top: { type: 'string' },
      samples: { type: 'string' },
      window: { type: 'string' },
      encoder: { type: 'string' },
      'decoder-prompt': { type: 'string' },
      'decoder-start': { type: 'string' },
    });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const positions = (v.positions ?? 'last') as KeyPositions;
    if (!['last', 'last-and-after'].includes(positions)) throw new UsageError(`--positions must be last or last-and-after, got "${v.positions}"`);
    const backend = (v.backend ?? 'auto') as 'auto' | 'js' | 'ort';
    if (!['auto', 'js', 'ort'].includes(backend)) throw new UsageError(`--backend must be auto, js or ort, got "${v.backend}"`);
    const lambda = numberOption('lambda', v.lambda, 0.01);
    if (!(lambda > 0)) throw new UsageError('--lambda must be positive');
    const preserveWeight = numberOption('preserve-weight', v['preserve-weight'], v.preserve !== undefined ? 1 : 0);
    if (preserveWeight < 0) throw new UsageError('--preserve-weight must be >= 0');
    const layer = required(v.layer, 'layer');
    const source = required(v.source, 'source');
    const target = required(v.target, 'target');
    const out = required(v.out, 'out');
    const templates = lines(v.templates, 'templates');
    const unrelated = lines(v.unrelated, 'unrelated prompts');
    const preserve = lines(v.preserve, 'preservation prompts');
    const decoderStart = v['decoder-start'] === undefined ? undefined : numberOption('decoder-start', v['decoder-start'], 0);
    if (decoderStart !== undefined && (!Number.isInteger(decoderStart) || decoderStart < 0)) throw new UsageError(`--decoder-start must be a token id, got "${v['decoder-start']}"`);
    const window = v.window === undefined ? undefined : numberOption('window', v.window, 1);
    if (window !== undefined && (!Number.isInteger(window) || window < 1)) throw new UsageError(`--window must be a positive integer, got "${v.window}"`);
    // As `mechanist localize`: a decoder exported apart may have its tokenizer beside its encoder.
    const { hooked } = openHooked(positionals[0], v, false);
    const progress = stderrProgress(v.quiet);
    try {
      const encoder = v.encoder ? openModel(v.encoder) : undefined;
      const tok = loadTokenizer(positionals[0], v.encoder, v.tokenizer);
      const r = await conceptEdit(
        hooked,
        tok,
        {
          layer,
          source,
          target,
          templates,
          lambda,
          positions,
          unrelated,
          preserve,
          preserveWeight,
          out,
          backend,
          top: numberOption('top', v.top, 5),
          trace: { samples: numberOption('samples', v.samples, 10), window },
          decoderPrompt: v['decoder-prompt'],
          decoderStart,
        },
        progress,
        undefined,
        { encoder: encoder && { model: encoder.model, graph: encoder.graph } },
      );
      progress.done();
      process.stdout.write(v.json ? `${JSON.stringify(r)}\n` : text(r));
    } finally {
      await hooked.dispose();
    }
  },
};

function text(r: EditResult): string {
  const what = r.edits.map((e) => `${e.weight} (${e.layer}, ${e.weightShape.join(' x ')} ${e.dtype})`).join(', ');
  const lines = [
    `edited ${what} with ${r.keys} keys${r.edits.length > 1 ? ' each' : ''}, lambda ${r.lambda}${r.preserveWeight ? `, preservation weight ${r.preserveWeight}` : ''}, in ${r.seconds.toFixed(3)} s -> ${r.out}`,
  ];
  if (r.decoder) lines.push(`decoder prompt ${JSON.stringify(r.decoder.prompt)} (ids ${r.decoder.ids.join(' ')})${r.decoder.encoder ? `, conditioning from ${r.decoder.encoder}` : ''}`);
  if (r.localisation) lines.push(`layer: ${r.localisation.note}${r.localisation.scores ? ` [${r.localisation.scores.map((s) => s.toFixed(3)).join(', ')}]` : ''}`);
  if ('hits' in r.before && 'hits' in r.after) {
    lines.push(`edited prompts predicting the target's answer: ${r.before.hits}/${r.before.prompts.length} before, ${r.after.hits}/${r.after.prompts.length} after`);
    for (const p of r.after.prompts) lines.push(`  ${p.hit ? '+' : ' '} ${JSON.stringify(p.prompt)} -> ${JSON.stringify(p.top[0].text)} ${p.top[0].p.toFixed(3)} (target's: ${JSON.stringify(p.expected.text)} ${p.pExpected.toFixed(3)})`);
  } else if ('closer' in r.before && 'closer' in r.after) {
    lines.push(`edited prompts closer to the target than to the source: ${r.before.closer}/${r.before.prompts.length} before, ${r.after.closer}/${r.after.prompts.length} after`);
    for (const p of r.after.prompts) lines.push(`  ${JSON.stringify(p.prompt)}: cos to source ${p.toSource.toFixed(3)}, to target ${p.toTarget.toFixed(3)}`);
  }
  const pr = r.preservation;
  if (pr.kind === 'language-model') lines.push(`unrelated prompts keeping their top-1: ${pr.kept}/${pr.prompts.length}`);
  else lines.push(`unrelated prompts: min cosine to their original embedding ${pr.minCosine.toFixed(4)}, max relative shift ${pr.maxShift.toFixed(4)}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return `${lines.join('\n')}\n`;
}
