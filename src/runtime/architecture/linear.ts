/** Finding the linear layers (MatMul/Gemm with a weight initializer) inside a module. */
import { toNumber } from '../onnx/types';
import type { NodeProto } from '../onnx/types';
import type { ModuleIndex } from './modules';
import type { LinearInfo } from './types';

const LINEAR_OPS = new Set(['MatMul', 'Gemm', 'FusedMatMul']);

/** The weight behind a MatMul/Gemm operand: an initializer, possibly through a 2-D Transpose. */
function weightOf(idx: ModuleIndex, value: string): { name: string; transposedByNode: boolean } | undefined {
  const g = idx.graph;
  const direct = g.initializerOf(value);
  if (direct) return { name: direct.name, transposedByNode: false };
  const p = g.producer.get(value);
  if (p?.op_type === 'Transpose') {
    const t = g.initializerOf(p.input[0]);
    if (t && t.dims.length === 2) return { name: t.name, transposedByNode: true };
  }
  return undefined;
}

/** Describes a MatMul/Gemm node as a linear layer, or undefined when its weight is not a constant. */
export function linearOfNode(idx: ModuleIndex, n: NodeProto, path: string): LinearInfo | undefined {
  if (!LINEAR_OPS.has(n.op_type)) return undefined;
  const g = idx.graph;
  const w = weightOf(idx, n.input[1]);
  if (!w) return undefined;
  const t = g.initializers.get(w.name)!;
  if (t.dims.length !== 2) return undefined;
  const [d0, d1] = t.dims.map(toNumber);
  let transposed = w.transposedByNode;
  if (n.op_type === 'Gemm' && g.attrInt(n, 'transB', 0) === 1) transposed = !transposed;
  let bias: string | undefined;
  if (n.op_type === 'Gemm' && n.input[2] && g.initializerOf(n.input[2])) bias = g.initializerOf(n.input[2])!.name;
  if (!bias) {
    // MatMul + Add(bias): the Add reading this output and a 1-D initializer.
    for (const c of g.consumers.get(n.output[0]) ?? []) {
      if (c.op_type !== 'Add') continue;
      const other = c.input.find((i) => i !== n.output[0]);
      const b = other ? g.initializerOf(other) : undefined;
      if (b && b.dims.length === 1) bias = b.name;
    }
  }
  const inFeatures = transposed ? d1 : d0;
  const outFeatures = transposed ? d0 : d1;
  return { path, node: g.name(n), weight: w.name, bias, inFeatures, outFeatures, transposed };
}

/** The first linear layer in a module's subtree. */
export function findLinear(idx: ModuleIndex, path: string): LinearInfo | undefined {
  for (const n of idx.subtree(path)) {
    const l = linearOfNode(idx, n, path);
    if (l) return l;
  }
  return undefined;
}
