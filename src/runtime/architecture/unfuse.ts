/**
 * Unfusing onnxruntime's Skip*LayerNormalization: `Add(input, skip) [+ bias]` then a
 * LayerNormalization (or SimplifiedLayerNormalization, RMS) of that sum. A fused norm hands on
 * the residual sum (optional output 3) and its normalised copy (output 0) from one kernel, so a
 * patch of the sum cannot reach the copy the next block reads; after unfusing, the copy is
 * computed from the sum, and the sum is an ordinary residual-stream value that can be patched.
 * Discovery withholds residual hook points on fused norms (structure.ts); an instrumenter that
 * applies this rewrite to the nodes whose sums it patches can offer them.
 */
import type { OnnxGraph } from '../onnx/graph';
import type { AttributeProto, NodeProto } from '../onnx/types';
import { SKIP_NORMS, isWeightedLinear } from './residual';

/** Why a node cannot be unfused. */
export class CannotUnfuse extends Error {}

/**
 * The nodes replacing one Skip*LayerNormalization node, with the same output names (the sum
 * named `sumName` when the node leaves output 3 unnamed). The norm ops are onnxruntime's
 * LayerNormalization / SimplifiedLayerNormalization in the default domain, which onnxruntime
 * accepts at every opset (stash_type 1: statistics in float32, as the fused kernel computes them).
 */
export function unfuseSkipNorm(g: OnnxGraph, n: NodeProto, sumName?: string): NodeProto[] {
  if (!SKIP_NORMS.has(n.op_type)) throw new CannotUnfuse(`${g.name(n)} is a ${n.op_type}, not a Skip*LayerNormalization`);
  for (const k of [1, 2]) {
    const o = n.output[k];
    if (o && ((g.consumers.get(o) ?? []).length || g.outputs.some((x) => x.name === o))) {
      throw new CannotUnfuse(`${g.name(n)}'s output ${k} (${k === 1 ? 'mean' : 'inverse std'}) is read: unfusing would drop it`);
    }
  }
  const simplified = n.op_type === 'SkipSimplifiedLayerNormalization';
  const [input, skip, gamma] = n.input;
  const beta = simplified ? undefined : n.input[3];
  const bias = simplified ? n.input[3] : n.input[4];
  const base = g.name(n);
  const sum = n.output[3] || sumName || `${base}/mechanist.residual_sum`;
  const eps = n.attribute.find((a) => a.name === 'epsilon');
  const attrs: AttributeProto[] = [
    { name: 'axis', type: 2, i: -1, floats: [], ints: [], strings: [], tensors: [], graphs: [] },
    { name: 'stash_type', type: 2, i: 1, floats: [], ints: [], strings: [], tensors: [], graphs: [] },
    ...(eps ? [{ ...eps }] : []),
  ];
  const out: NodeProto[] = [];
  // The bias belongs to the branch (the output projection whose bias the optimizer folded in):
  // adding it there first keeps the residual addition `stream + branch` a single Add whose
  // output is the whole sum, and the branch value the projection's full output.
  let [stream, branch] = [input, skip];
  if (bias) {
    const p0 = g.producer.get(input);
    if (p0 && isWeightedLinear(g, p0)) [stream, branch] = [skip, input];
    const withBias = `${branch}/mechanist.with_bias`;
    out.push({ name: `${base}/mechanist.add_bias`, op_type: 'Add', domain: '', input: [branch, bias], output: [withBias], attribute: [] });
    branch = withBias;
  }
  out.push({ name: `${base}/mechanist.add`, op_type: 'Add', domain: '', input: [stream, branch], output: [sum], attribute: [] });
  if (!n.output[0]) return out; // only the sum is used
  const normIn = simplified ? [sum, gamma] : [sum, gamma, ...(beta ? [beta] : [])];
  out.push({ name: `${base}/mechanist.norm`, op_type: simplified ? 'SimplifiedLayerNormalization' : 'LayerNormalization', domain: '', input: normIn, output: [n.output[0]], attribute: attrs });
  return out;
}

/** Every Skip*LayerNormalization of a node list unfused (file order kept); other nodes as they are. */
export function unfuseAllSkipNorms(g: OnnxGraph, nodes: NodeProto[]): NodeProto[] {
  return nodes.flatMap((n) => (SKIP_NORMS.has(n.op_type) ? unfuseSkipNorm(g, n) : [n]));
}
