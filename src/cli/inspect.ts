/** `mechanist inspect <model.onnx> [--json]`: what discovery finds in a model. */
import { openModel, summarize } from '../runtime/inspect';
import type { ModelSummary } from '../runtime/inspect';
import { UsageError, parse } from './args';
import type { CliCommand } from './commands';

export const inspectCommand: CliCommand = {
  usage: 'inspect <model.onnx> [--json] [--full]',
  summary: 'family, blocks, heads, hook points, inputs and outputs of a model',
  async run(argv) {
    const { positionals, values } = parse(argv, { json: { type: 'boolean' }, full: { type: 'boolean' } });
    if (positionals.length !== 1) throw new UsageError('expected one model path');
    const { model, graph, arch } = openModel(positionals[0]);
    const s = summarize(model, graph, arch);
    if (values.json) {
      // Node lists and the module tree are long; --full keeps them.
      const out = values.full ? s : slim(s);
      process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
      return;
    }
    process.stdout.write(text(s));
  },
};

function slim(s: ModelSummary): unknown {
  return JSON.parse(JSON.stringify(s, (k, v) => (k === 'nodes' || k === 'modules' ? undefined : v)));
}

function text(s: ModelSummary): string {
  const lines = [
    `${s.path}`,
    `family ${s.family}: ${s.layers} layers, ${s.heads} heads${s.kvHeads !== s.heads ? ` (${s.kvHeads} KV heads)` : ''} x ${s.headDim}, d_model ${s.dModel}${s.vocabSize ? `, vocabulary ${s.vocabSize}` : ''}`,
    `${s.paramCount.toLocaleString('en-US')} parameters, opset ${s.opset}${s.producer ? `, made by ${s.producer}` : ''}`,
    `inputs: ${s.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(', ')}]`).join('; ')}`,
    `outputs: ${s.outputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(', ')}]`).join('; ')}`,
    `hook points: ${s.hookPoints.length}`,
    ...s.notices.map((n) => `note: ${n}`),
  ];
  return `${lines.join('\n')}\n`;
}
