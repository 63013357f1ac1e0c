/**
 * The last block's MLP at the last position only, in suffix runs that read nothing but the last
 * position's logits (a causal trace's restorations and its probe: `mechanist.suffix` on,
 * `mechanist.capture` off). There, the last block's other positions feed nothing after the
 * block: only their keys and values matter, which its attention has already used. So the
 * residual stream between the block's attention and its MLP is cut to the last position:
 *
 *   mid' = If(suffix and not capture, then: mid[:, -1:], else: mid)
 *
 * and everything reading it (the norm, the MLP, the residual add) runs on one position. On the
 * bench model this removes about a tenth of a trace's restoration FLOPs. A patch of the MLP's
 * output still applies: its [rows, S', 1] mask broadcasts against the one position, and only
 * the last position is read (the last-position logits slice it).
 *
 * Applied only where it provably changes nothing else: `mid` is the other input of the Add that
 * makes the block's output from the MLP's output, every node downstream of `mid` inside the
 * block is positionwise (weights, elementwise ops, norms over the last axis), and nothing
 * outside the block reads them. Suffix runs are checked against a full run before a trace uses
 * them (causalTrace's probe), which covers this cut as well.
 */
import type { AttributeProto, GraphProto, NodeProto } from '../onnx/types';
import { ifNode, int64s, node } from './graphParts';

/** Elementwise ops, and ops that are positionwise when their second input is a weight. */
const ELEMENTWISE = new Set(['Dropout', 'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Reciprocal', 'Neg', 'Erf', 'Tanh', 'Sigmoid', 'Relu', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'Softplus', 'Exp', 'Log', 'Cast', 'Identity', 'Where', 'Clip', 'Max', 'Min', 'Abs']);
const WEIGHTED = new Set(['MatMul', 'Gemm']);
const LAST_AXIS_NORMS = new Set(['LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization']);
const LAST_AXIS_REDUCES = new Set(['ReduceMean', 'ReduceSum', 'ReduceSumSquare', 'ReduceL2', 'ReduceMax']);


/**
 * Cuts the last block's MLP input to the last position in suffix runs without captures, when
 * the block allows it. `g` is the flat rewritten graph, `blockOf` its node -> block map (new
 * nodes are added to the block), `block` the last block's index, `blockOut` its output and
 * `mlpOut` the MLP's output (as named in `g`); `elemType` the residual stream's element type.
 * Returns whether the cut was made.
 */
export function cutLastMlp(g: GraphProto, blockOf: number[], block: number, blockOut: string, mlpOut: string, flags: { suffix: string; capture: string }, initializers: Set<string>, elemType: number): boolean {
  const members = new Set(g.node.flatMap((n, i) => (blockOf[i] === block ? [n] : [])));
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) if (o) producer.set(o, n);
  const sum = producer.get(blockOut);
  if (!sum || sum.op_type !== 'Add' || !members.has(sum) || sum.input.filter((x) => x === mlpOut).length !== 1) return false;
  const mid = sum.input.find((x) => x !== mlpOut)!;
  const midProducer = producer.get(mid);
  if (!midProducer || !members.has(midProducer)) return false;

  // Everything downstream of `mid` in the block must be positionwise and stay in the block.
  // Shape arithmetic on it (exporters reshape [rows, S, d] to [rows * S, d] around a Gemm and
  // back, with shapes read from the tensor itself) follows the cut along with it.
  // (Constants: initializers, Constant nodes, and what is computed from them alone.)
  const constants = new Set(initializers);
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of g.node) {
      if (n.output.every((o) => !o || constants.has(o))) continue;
      if (n.op_type === 'Constant' || (n.input.length > 0 && n.input.every((x) => !x || constants.has(x)) && !n.attribute.some((a) => a.g))) {
        n.output.forEach((o) => o && constants.add(o));
        grew = true;
      }
    }
  }
  const consumers = new Map<string, NodeProto[]>();
  g.node.forEach((n) => n.input.forEach((x) => x && consumers.set(x, [...(consumers.get(x) ?? []), n])));
  const seen = new Set<NodeProto>();
  const stack = [mid];
  while (stack.length) {
    const v = stack.pop()!;
    if (v === blockOut) continue;
    for (const c of consumers.get(v) ?? []) {
      if (seen.has(c)) continue;
      if (!members.has(c)) return false;
      seen.add(c);
      for (const o of c.output) if (o) stack.push(o);
    }
  }
  if (!seen.has(sum)) return false;
  // Shape values: what Shape reads off them, and arithmetic on only such values and constants.
  const shapes = new Set<string>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of seen) {
      if (n.output.every((o) => !o || shapes.has(o))) continue;
      if (n.op_type === 'Shape' || n.input.every((x) => !x || shapes.has(x) || constants.has(x))) {
        n.output.forEach((o) => o && shapes.add(o));
        grew = true;
      }
    }
  }
  for (const n of seen) if (!n.output.every((o) => !o || shapes.has(o)) && !positionwise(n, constants, shapes)) return false;

  const cut = `${mid}::last_position`;
  const name = 'mechanist/last_mlp';
  const [start, end, axis] = ['start', 'end', 'axis'].map((k) => `mechanist.last_mlp/${k}`);
  g.initializer.push(int64s(start, [-1n]), int64s(end, [9223372036854775807n]), int64s(axis, [1n]));
  const nodes: NodeProto[] = [
    node(`${name}/NotCapture`, 'Not', [flags.capture], [`${name}/no_capture`]),
    node(`${name}/Cond`, 'And', [flags.suffix, `${name}/no_capture`], [`${name}/cond`]),
    ifNode(`${name}/If`, `${name}/cond`, cut, elemType, [node(`${name}/Slice`, 'Slice', [mid, start, end, axis], [`${name}/sliced`])], `${name}/sliced`, mid),
  ];
  for (const c of seen) if (c.input.includes(mid)) c.input = c.input.map((x) => (x === mid ? cut : x));
  // Placed right after the producer of `mid`, in the block.
  const at = g.node.indexOf(midProducer) + 1;
  g.node.splice(at, 0, ...nodes);
  blockOf.splice(at, 0, ...nodes.map(() => block));
  return true;
}

function positionwise(n: NodeProto, constants: Set<string>, shapes: Set<string>): boolean {
  const fixed = (x: string): boolean => !x || constants.has(x);
  if (ELEMENTWISE.has(n.op_type)) return true;
  if (WEIGHTED.has(n.op_type)) return n.input.slice(1).every(fixed);
  // Reshapes to shapes read off the cut tensor, or to [-1, d]-style constants (rows merged).
  if (n.op_type === 'Reshape') return !!n.input[1] && (shapes.has(n.input[1]) || constants.has(n.input[1]));
  const axis = n.attribute.find((a) => a.name === 'axis' || a.name === 'axes');
  const last = (a: AttributeProto | undefined, dflt: boolean): boolean => (a ? (a.ints.length ? a.ints.length === 1 && Number(a.ints[0]) === -1 : Number(a.i) === -1) : dflt);
  if (LAST_AXIS_NORMS.has(n.op_type)) return last(axis, true) && n.input.slice(1).every(fixed);
  // (Reduce ops with axes as an input, opset 18+, are not followed: the cut is then not made.)
  if (LAST_AXIS_REDUCES.has(n.op_type)) return n.input.length === 1 && last(axis, false);
  if (n.op_type === 'Split') return last(axis, false);
  return false;
}
