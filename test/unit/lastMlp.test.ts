import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutLastMlp } from '../../src/runtime/instrument/lastMlp';
import type { GraphProto, NodeProto } from '../../src/runtime/onnx/types';

const node = (name: string, op: string, input: string[], output: string[]): NodeProto => ({ name, op_type: op, domain: '', input, output, attribute: [] });

/** A last block: mid = x + attn; out = mid + mlp(mid), with `between` ops on the MLP's input. */
function block(between: NodeProto[]): { g: GraphProto; blockOf: number[] } {
  const nodes = [
    node('attn', 'MatMul', ['x', 'w_attn'], ['attn_out']),
    node('mid', 'Add', ['x', 'attn_out'], ['mid']),
    ...between,
    node('fc', 'MatMul', [between.length ? between[between.length - 1].output[0] : 'mid', 'w_fc'], ['mlp_out']),
    node('out', 'Add', ['mid', 'mlp_out'], ['out']),
  ];
  const g = { name: 'g', node: nodes, input: [], output: [], initializer: ['w_attn', 'w_fc'].map((n) => ({ name: n }) as never), value_info: [] } as unknown as GraphProto;
  return { g, blockOf: nodes.map(() => 0) };
}

test('cutLastMlp cuts a positionwise MLP input and refuses one that mixes positions', () => {
  const flags = { suffix: 'mechanist.suffix', capture: 'mechanist.capture' };
  const inits = new Set(['w_attn', 'w_fc']);
  const ok = block([node('ln', 'LayerNormalization', ['mid'], ['ln']), node('gelu', 'Tanh', ['ln'], ['act'])]);
  assert.equal(cutLastMlp(ok.g, ok.blockOf, 0, 'out', 'mlp_out', flags, inits, 1), true);
  assert.equal(ok.blockOf.length, ok.g.node.length);
  const cutIf = ok.g.node.find((n) => n.name === 'mechanist/last_mlp/If')!;
  assert.deepEqual(cutIf.output, ['mid::last_position']);
  assert.deepEqual(ok.g.node.find((n) => n.name === 'ln')!.input, ['mid::last_position']);
  assert.deepEqual(ok.g.node.find((n) => n.name === 'out')!.input, ['mid::last_position', 'mlp_out']);
  assert.ok(ok.g.node.indexOf(cutIf) > ok.g.node.findIndex((n) => n.name === 'mid'), 'after the producer of mid');

  // A Transpose (or a MatMul of two activations) between mid and the MLP mixes positions: no cut.
  const mixed = block([node('t', 'Transpose', ['mid'], ['t'])]);
  assert.equal(cutLastMlp(mixed.g, mixed.blockOf, 0, 'out', 'mlp_out', flags, inits, 1), false);
  const attn2 = block([node('mm', 'MatMul', ['mid', 'attn_out'], ['mm'])]);
  assert.equal(cutLastMlp(attn2.g, attn2.blockOf, 0, 'out', 'mlp_out', flags, inits, 1), false);
  // The block output not made by adding the MLP output: no cut.
  const other = block([]);
  other.g.node[other.g.node.length - 1].op_type = 'Mul';
  assert.equal(cutLastMlp(other.g, other.blockOf, 0, 'out', 'mlp_out', flags, inits, 1), false);
  // A node outside the block reads the MLP's input: no cut.
  const outside = block([]);
  outside.g.node.push(node('later', 'Identity', ['mid'], ['later']));
  outside.blockOf.push(-1);
  assert.equal(cutLastMlp(outside.g, outside.blockOf, 0, 'out', 'mlp_out', flags, inits, 1), false);
});
