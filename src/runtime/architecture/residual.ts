/**
 * The residual stream found from the graph's structure alone: where it starts (the token
 * embedding, or a float hidden-state input) and the chain of residual additions along it.
 * A residual addition ("junction") is an `Add`, or an onnxruntime `SkipLayerNormalization`
 * / `SkipSimplifiedLayerNormalization`, whose two activation inputs are the stream (the skip)
 * and a value computed from that same stream through at least one linear layer or fused
 * attention op (the branch). Anonymous exports keep this shape whatever their node names.
 */
import type { OnnxGraph } from '../onnx/graph';
import type { NodeProto } from '../onnx/types';

/** Fused norms that add the residual inside the kernel; output 3 (optional) is the sum. */
export const SKIP_NORMS = new Set(['SkipLayerNormalization', 'SkipSimplifiedLayerNormalization']);
/** onnxruntime's fused attention kernels. */
export const FUSED_ATTENTION = new Set(['Attention', 'MultiHeadAttention', 'GroupQueryAttention', 'PackedAttention', 'PackedMultiHeadAttention', 'DecoderMaskedMultiHeadAttention', 'SparseAttention']);
const LINEAR = new Set(['MatMul', 'Gemm', 'FusedMatMul']);

/** One residual addition on the stream. */
export interface Junction {
  node: NodeProto;
  /** The stream value entering the addition. */
  skip: string;
  /** The branch's result added to it (for a Skip*LayerNorm with a bias input: before that bias). */
  branch: string;
  /** The sum; for a Skip*LayerNorm only when its optional output 3 is named. */
  out?: string;
  /** Nodes computing the branch from the skip (the junction itself excluded). */
  nodes: NodeProto[];
}

export interface Spine {
  /** Where the stream starts: the token lookup's output, an embedding sum, or a hidden-state input. */
  start: string;
  /** The token-embedding lookup, when there is one (`hook_embed`). */
  tokenEmbed?: NodeProto;
  /** An `EmbedLayerNormalization` that computes the embeddings, when fused. */
  embedNorm?: NodeProto;
  junctions: Junction[];
}

/** Why no residual stream could be traced (the message names what did not match). */
export class NoSpine extends Error {}

/** Values reachable from `from` through activation ops (not through Shape/Size). */
export function downstream(g: OnnxGraph, from: string[]): Set<string> {
  const seen = new Set<string>(from);
  const queue = [...from];
  while (queue.length) {
    const v = queue.pop()!;
    for (const c of g.consumers.get(v) ?? []) {
      if (c.op_type === 'Shape' || c.op_type === 'Size') continue;
      for (const o of c.output) {
        if (o && !seen.has(o)) {
          seen.add(o);
          queue.push(o);
        }
      }
    }
  }
  return seen;
}

const orders = new WeakMap<OnnxGraph, Map<NodeProto, number>>();

/**
 * Each node's position in a topological order. Computed here rather than with
 * `OnnxGraph.topological()` because some exports (onnxruntime's gpt2_past test model) define
 * the same Constant output twice, and a value must release its consumers only once.
 */
export function topoPositions(g: OnnxGraph): Map<NodeProto, number> {
  const hit = orders.get(g);
  if (hit) return hit;
  const available = new Set<string>([...g.initializers.keys(), ...g.proto.input.map((i) => i.name), '']);
  const pending = new Map<NodeProto, number>();
  const ready: NodeProto[] = [];
  for (const n of g.nodes) {
    const missing = n.input.filter((i) => !available.has(i) && g.producer.has(i)).length;
    pending.set(n, missing);
    if (missing === 0) ready.push(n);
  }
  const pos = new Map<NodeProto, number>();
  for (let r = 0; r < ready.length; r++) {
    const n = ready[r];
    pos.set(n, pos.size);
    for (const o of n.output) {
      if (!o || available.has(o)) continue;
      available.add(o);
      for (const c of g.consumers.get(o) ?? []) {
        const left = pending.get(c)! - c.input.filter((i) => i === o).length;
        pending.set(c, left);
        if (left === 0) ready.push(c);
      }
    }
  }
  // Nodes in a cycle (invalid graphs) go last, in file order.
  for (const n of g.nodes) if (!pos.has(n)) pos.set(n, pos.size);
  orders.set(g, pos);
  return pos;
}

/** True for a MatMul/Gemm whose second operand is a weight (not two activations). */
export function isWeightedLinear(g: OnnxGraph, n: NodeProto): boolean {
  if (!LINEAR.has(n.op_type)) return false;
  const w = n.input[1];
  if (!w) return false;
  if (g.initializerOf(w)) return true;
  const p = g.producer.get(w);
  return !!p && p.op_type === 'Transpose' && !!g.initializerOf(p.input[0]);
}

/** The token-id lookups: Gathers from a 2-D table indexed by a value derived from an integer input. */
function tokenLookup(g: OnnxGraph): NodeProto | undefined {
  const tables = g.nodes.filter((n) => n.op_type === 'Gather' && g.initializerOf(n.input[0])?.dims.length === 2 && !g.isConstant(n.input[1]));
  const idInputs = g.inputs.filter((i) => /ids$/.test(i.name) && !/position|type|segment/.test(i.name)).map((i) => i.name);
  const fromIds = downstreamThroughIndexOps(g, idInputs);
  const fed = tables.filter((n) => fromIds.has(n.input[1]));
  const rows = (n: NodeProto): number => Number(g.initializerOf(n.input[0])!.dims[0]);
  return (fed.length ? fed : tables).sort((a, b) => rows(b) - rows(a))[0];
}

/** Values computed from the id inputs by index plumbing (Cast, Reshape, Slice, ...), not by lookups. */
function downstreamThroughIndexOps(g: OnnxGraph, from: string[]): Set<string> {
  const seen = new Set(from);
  const queue = [...from];
  while (queue.length) {
    const v = queue.pop()!;
    for (const c of g.consumers.get(v) ?? []) {
      if (!['Cast', 'Reshape', 'Slice', 'Squeeze', 'Unsqueeze', 'Identity', 'Flatten'].includes(c.op_type) || c.input[0] !== v) continue;
      if (c.output[0] && !seen.has(c.output[0])) {
        seen.add(c.output[0]);
        queue.push(c.output[0]);
      }
    }
  }
  return seen;
}

/** Finds the residual stream and its junctions, or throws NoSpine saying what did not match. */
export function traceSpine(g: OnnxGraph): Spine {
  const embedNorm = g.nodes.find((n) => n.op_type === 'EmbedLayerNormalization');
  const tokenEmbed = embedNorm ? undefined : tokenLookup(g);
  const starts: string[][] = [];
  if (embedNorm) starts.push(embedNorm.output.filter((o, i) => o && i !== 1));
  else if (tokenEmbed) starts.push([tokenEmbed.output[0]]);
  else for (const i of g.inputs) if (g.types.get(i.name)?.elemType === 1 || g.types.get(i.name)?.elemType === 10) starts.push([i.name]);
  if (!starts.length) throw new NoSpine('no token-embedding lookup (Gather from a 2-D table fed by token ids) and no float hidden-state input to start the residual stream from');
  let best: Spine | undefined;
  let lastError = '';
  for (const s of starts) {
    try {
      const spine = chainFrom(g, s, tokenEmbed, embedNorm);
      if (!best || spine.junctions.length > best.junctions.length) best = spine;
    } catch (e) {
      if (!(e instanceof NoSpine)) throw e;
      lastError = e.message;
    }
  }
  if (!best) throw new NoSpine(lastError);
  return best;
}

function chainFrom(g: OnnxGraph, starts: string[], tokenEmbed: NodeProto | undefined, embedNorm: NodeProto | undefined): Spine {
  const pos = topoPositions(g);
  const order = [...g.nodes].sort((a, b) => pos.get(a)! - pos.get(b)!);
  const at = (v: string): number => {
    const p = g.producer.get(v);
    return p ? pos.get(p)! : -1;
  };
  const stream = downstream(g, starts);
  const found: Junction[] = [];
  for (const n of order) {
    const isSkipNorm = SKIP_NORMS.has(n.op_type);
    if (n.op_type !== 'Add' && !isSkipNorm) continue;
    const [a, b] = n.input;
    if (!a || !b || !stream.has(a) || !stream.has(b)) continue;
    for (const [skip, branch] of at(a) <= at(b) ? [[a, b]] : [[b, a]]) {
      const nodes = branchNodes(g, skip, branch, stream, pos, at(skip));
      if (!nodes || !nodes.some((x) => isWeightedLinear(g, x) || FUSED_ATTENTION.has(x.op_type))) continue;
      found.push({ node: n, skip, branch, out: isSkipNorm ? n.output[3] || undefined : n.output[0], nodes });
    }
  }
  if (!found.length) throw new NoSpine(`no residual addition found downstream of ${starts.join(', ')} (an Add of the stream and a branch computed from it through a linear layer)`);
  // Junctions nested inside another's branch (a residual inside an MLP) are not on the spine.
  const nested = new Set<NodeProto>(found.flatMap((j) => j.nodes));
  const junctions = found.filter((j) => !nested.has(j.node));
  for (let k = 1; k < junctions.length; k++) {
    const prev = junctions[k - 1];
    const skip = junctions[k].skip;
    if (skip === prev.out) continue;
    // Post-norm layouts (BERT) normalise the sum before handing it on; allow a norm, nothing else.
    if (prev.out && normPath(g, prev.out, skip)) continue;
    if (!prev.out && SKIP_NORMS.has(prev.node.op_type) && skip === prev.node.output[0]) continue;
    throw new NoSpine(`residual additions do not form one chain: ${g.name(junctions[k].node)} adds to ${skip}, not to the sum of ${g.name(prev.node)} or its norm`);
  }
  return { start: junctions[0].skip === starts[0] || !embedNorm ? starts[0] : junctions[0].skip, tokenEmbed, embedNorm, junctions };
}

/**
 * The nodes on paths from `skip` to `branch` (walking back from `branch`, never before
 * `skip`'s producer), or undefined when `skip` is not an ancestor of `branch`.
 */
function branchNodes(g: OnnxGraph, skip: string, branch: string, stream: Set<string>, pos: Map<NodeProto, number>, floor: number): NodeProto[] | undefined {
  const seen = new Set<NodeProto>();
  const queue = [branch];
  const visited = new Set<string>([branch]);
  let reached = false;
  // A fused norm hands the stream on twice (the sum and its normalised value): reading either is
  // reading the stream.
  const source = g.producer.get(skip);
  const twin = source && (SKIP_NORMS.has(source.op_type) || source.op_type === 'EmbedLayerNormalization') ? source : undefined;
  while (queue.length) {
    const v = queue.pop()!;
    if (v === skip || (twin && g.producer.get(v) === twin)) {
      reached = true;
      continue;
    }
    const p = g.producer.get(v);
    if (!p || pos.get(p)! <= floor || seen.has(p)) continue;
    seen.add(p);
    for (const i of p.input) {
      if (i && stream.has(i) && !visited.has(i)) {
        visited.add(i);
        queue.push(i);
      }
    }
  }
  if (!reached) return undefined;
  // Keep only nodes that themselves depend on the skip (drop mask and position plumbing).
  const fromSkip = new Set<string>([skip, ...(twin ? twin.output.filter((o) => o) : [])]);
  const out: NodeProto[] = [];
  for (const n of [...seen].sort((x, y) => pos.get(x)! - pos.get(y)!)) {
    if (!n.input.some((i) => fromSkip.has(i))) continue;
    out.push(n);
    for (const o of n.output) if (o) fromSkip.add(o);
  }
  return out;
}

export const NORM_OPS = new Set(['LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization', 'ReduceMean', 'Sub', 'Pow', 'Sqrt', 'Div', 'Mul', 'Add', 'Reciprocal', 'Cast', 'Identity']);

/**
 * The nodes computing `to` from `from` by a norm alone (a fused norm op, its decomposed ops, or
 * just a Cast), or undefined when anything else lies between.
 */
export function normPath(g: OnnxGraph, from: string, to: string): NodeProto[] | undefined {
  const pos = topoPositions(g);
  const fromPos = g.producer.get(from) ? pos.get(g.producer.get(from)!)! : -1;
  const queue = [to];
  const seen = new Set<string>([to]);
  const nodes = new Set<NodeProto>();
  let reached = false;
  for (let steps = 0; queue.length && steps < 64; steps++) {
    const v = queue.pop()!;
    if (v === from) {
      reached = true;
      continue;
    }
    const p = g.producer.get(v);
    if (!p || pos.get(p)! <= fromPos) continue;
    if (!NORM_OPS.has(p.op_type)) return undefined;
    nodes.add(p);
    for (const i of p.input) if (i && !g.isConstant(i) && !seen.has(i)) {
        seen.add(i);
        queue.push(i);
      }
  }
  return reached ? [...nodes].sort((a, b) => pos.get(a)! - pos.get(b)!) : undefined;
}

/** True when a node set normalises (as opposed to only casting). */
export function isNorm(nodes: NodeProto[]): boolean {
  return nodes.some((n) => ['LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization', 'ReduceMean'].includes(n.op_type));
}
