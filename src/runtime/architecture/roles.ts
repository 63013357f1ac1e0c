/**
 * Roles inside one residual branch found by structure: an attention (a Softmax between two
 * activation MatMuls, or a fused attention op) with its q/k/v/o projections and head split,
 * or an MLP (linear layers around an activation). Nothing is read from names.
 */
import type { OnnxGraph } from '../onnx/graph';
import type { NodeProto } from '../onnx/types';
import { splitFromShape } from './heads';
import { linearOfNode } from './linear';
import type { ModuleIndex } from './modules';
import { FUSED_ATTENTION, isWeightedLinear } from './residual';
import type { Junction } from './residual';
import type { LinearInfo } from './types';

/** Why a branch could not be read (the message names the branch and what did not match). */
export class NoRoles extends Error {}

export interface AttentionRolesFound {
  kind: 'attention';
  cross: boolean;
  q?: LinearInfo;
  k?: LinearInfo;
  v?: LinearInfo;
  qkv?: LinearInfo;
  o: LinearInfo;
  softmax?: string;
  fused?: NodeProto;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** The per-head output before the output projection, as [b, s, H*Dh] or [b, s, H, Dh]. */
  z?: string;
}

export interface MlpRolesFound {
  kind: 'mlp';
  in: LinearInfo[];
  out: LinearInfo;
  /** The activation the output projection reads. */
  post: string;
}

/** Values that depend on the junction's skip inside its branch. */
function branchValues(j: Junction): Set<string> {
  const s = new Set<string>([j.skip]);
  for (const n of j.nodes) for (const o of n.output) if (o) s.add(o);
  return s;
}

/** Values reachable from `from` through the branch's nodes. */
function reach(j: Junction, from: string): Set<string> {
  const s = new Set<string>([from]);
  for (const n of j.nodes) if (n.input.some((i) => s.has(i))) for (const o of n.output) if (o) s.add(o);
  return s;
}

/** The value feeding a node, walked back through reshapes (not transposes) inside the branch. */
function beforeReshapes(g: OnnxGraph, v: string, inside: Set<NodeProto>): string {
  for (let i = 0; i < 8; i++) {
    const p = g.producer.get(v);
    if (!p || !inside.has(p) || !['Reshape', 'Flatten', 'Identity', 'Cast', 'Squeeze', 'Unsqueeze'].includes(p.op_type)) break;
    v = p.input[0];
  }
  return v;
}

/** A fused Attention op's packed q/k/v weight as a linear layer. */
function fusedQkv(idx: ModuleIndex, n: NodeProto, path: string): LinearInfo | undefined {
  const g = idx.graph;
  const w = n.input[1] ? g.initializerOf(n.input[1]) : undefined;
  if (!w || w.dims.length !== 2) return undefined;
  const b = n.input[2] ? g.initializerOf(n.input[2]) : undefined;
  return { path, node: g.name(n), weight: w.name, bias: b?.name, inFeatures: Number(w.dims[0]), outFeatures: Number(w.dims[1]), transposed: false };
}

/** Reads the roles of one branch; `path` names the module for the projections. */
export function branchRoles(idx: ModuleIndex, j: Junction, path: string): AttentionRolesFound | MlpRolesFound {
  const g = idx.graph;
  const where = `the residual branch added by ${g.name(j.node)}`;
  const linearNodes = j.nodes.filter((n) => isWeightedLinear(g, n));
  const fused = j.nodes.filter((n) => FUSED_ATTENTION.has(n.op_type));
  const softmaxes = j.nodes.filter((n) => n.op_type === 'Softmax');
  const lin = (n: NodeProto, role: string): LinearInfo => {
    const l = linearOfNode(idx, n, `${path}.${role}`);
    if (!l) throw new NoRoles(`${where}: ${g.name(n)} is not a 2-D linear layer`);
    return l;
  };
  if (fused.length > 1 || softmaxes.length > 1 || (fused.length && softmaxes.length)) {
    throw new NoRoles(`${where} holds ${fused.length} fused attention op(s) and ${softmaxes.length} Softmax node(s): not one attention`);
  }
  if (!fused.length && !softmaxes.length) {
    if (linearNodes.length < 2) throw new NoRoles(`${where} has ${linearNodes.length} linear layer(s) and no attention: neither an attention nor an MLP`);
    const out = linearNodes[linearNodes.length - 1];
    const ins = linearNodes.slice(0, -1);
    const outReads = reach(j, out.output[0]);
    if (ins.some((n) => outReads.has(n.input[0]))) throw new NoRoles(`${where}: linear layers after the MLP's output projection`);
    return { kind: 'mlp', in: ins.map((n, i) => lin(n, ins.length > 1 ? `in${i}` : 'in')), out: lin(out, 'out'), post: beforeReshapes(g, out.input[0], new Set(j.nodes)) };
  }
  const core = fused[0] ?? softmaxes[0];
  const after = reach(j, core.output[0]);
  const oNodes = linearNodes.filter((n) => after.has(n.input[0]));
  const inNodes = linearNodes.filter((n) => !after.has(n.input[0]));
  if (oNodes.length !== 1) throw new NoRoles(`${where}: ${oNodes.length} linear layers after the attention (expected one output projection)`);
  const o = lin(oNodes[0], 'o');
  const values = branchValues(j);
  let q: LinearInfo | undefined;
  let k: LinearInfo | undefined;
  let v: LinearInfo | undefined;
  let qkv: LinearInfo | undefined;
  let cross = false;
  let heads = 0;
  let kvHeads = 0;
  let headDim = 0;
  if (fused.length) {
    const f = fused[0];
    heads = g.attrInt(f, 'num_heads', 0)!;
    kvHeads = g.attrInt(f, 'kv_num_heads', heads)!;
    if (f.op_type === 'Attention') qkv = fusedQkv(idx, f, `${path}.qkv`);
    else {
      // Separate projections feed query, key and value (inputs 0, 1, 2), possibly through rotary.
      const feeding = (slot: number): LinearInfo | undefined => {
        const target = f.input[slot];
        const n = target ? inNodes.find((x) => reach(j, x.output[0]).has(target)) : undefined;
        return n ? lin(n, ['q', 'k', 'v'][slot]) : undefined;
      };
      if (f.input[1]) {
        q = feeding(0);
        k = feeding(1);
        v = feeding(2);
      } else {
        // Packed q/k/v in the query input (GroupQueryAttention / MultiHeadAttention without key and value).
        qkv = feeding(0);
        if (qkv) qkv = { ...qkv, path: `${path}.qkv` };
      }
      // Keys computed outside this branch (not from the stream) are a conditioning sequence.
      cross = !!f.input[1] && !values.has(f.input[1]);
    }
    // The output projection reads heads x head size (whatever the q/k/v packing or KV grouping).
    headDim = heads ? o.inFeatures / heads : 0;
    if (!heads || !Number.isInteger(headDim)) throw new NoRoles(`${where}: the fused ${f.op_type} op has no usable num_heads attribute`);
    return { kind: 'attention', cross, q, k, v, qkv, o, fused: f, heads, kvHeads, headDim };
  }
  const sm = softmaxes[0];
  const scores = scoresMatMul(g, sm, new Set(j.nodes));
  const pv = j.nodes.find((n) => n.op_type === 'MatMul' && n.input[0] && after.has(n.input[0]) && !isWeightedLinear(g, n));
  if (!scores || !pv) throw new NoRoles(`${where}: the Softmax is not between a query-key MatMul and a value MatMul`);
  cross = !values.has(scores.input[1]);
  const feeds = (n: NodeProto, target: string): boolean => reach(j, n.output[0]).has(target);
  if (cross) {
    // Keys and values are projected from the conditioning sequence, outside this branch.
    const qn = inNodes.length === 1 && feeds(inNodes[0], scores.input[0]) ? inNodes[0] : undefined;
    const kn = linearBehind(g, scores.input[1]);
    const vn = linearBehind(g, pv.input[1]);
    if (!qn || !kn || !vn) throw new NoRoles(`${where}: a cross-attention whose query, key and value projections could not all be found`);
    q = lin(qn, 'q');
    k = lin(kn, 'k');
    v = lin(vn, 'v');
  } else if (inNodes.length === 1) {
    qkv = lin(inNodes[0], 'qkv');
  } else if (inNodes.length === 3) {
    const qn = inNodes.find((n) => feeds(n, scores.input[0]));
    const kn = inNodes.find((n) => n !== qn && feeds(n, scores.input[1]));
    const vn = inNodes.find((n) => n !== qn && n !== kn && feeds(n, pv.input[1]));
    if (!qn || !kn || !vn) throw new NoRoles(`${where}: could not tell the query, key and value projections apart`);
    q = lin(qn, 'q');
    k = lin(kn, 'k');
    v = lin(vn, 'v');
  } else {
    throw new NoRoles(`${where}: ${inNodes.length} projections before the attention (expected one fused q/k/v or three)`);
  }
  const inside = new Set(j.nodes);
  const qSplit = q ? headSplitOf(g, q, inside, [q.outFeatures]) : headSplitOf(g, qkv!, inside, [qkv!.outFeatures / 3]);
  if (!qSplit) throw new NoRoles(`${where}: no Reshape splitting the query into [.., heads, head size] with constant heads`);
  heads = qSplit.heads;
  headDim = qSplit.headDim;
  kvHeads = k ? (headSplitOf(g, k, inside, [k.outFeatures])?.heads ?? heads) : heads;
  return { kind: 'attention', cross, q, k, v, qkv, o, softmax: sm.output[0], heads, kvHeads, headDim, z: beforeReshapes(g, g.nodeByName.get(o.node)!.input[0], inside) };
}

/** The linear layer a value comes from, through head reshapes, transposes, bias adds and cache concats. */
function linearBehind(g: OnnxGraph, v: string): NodeProto | undefined {
  for (let i = 0; i < 12; i++) {
    const p = g.producer.get(v);
    if (!p) return undefined;
    if (isWeightedLinear(g, p)) return p;
    if (!['Reshape', 'Transpose', 'Add', 'Concat', 'Div', 'Mul', 'Cast', 'Identity'].includes(p.op_type)) return undefined;
    const acts = p.input.filter((x) => x && !g.isConstant(x));
    // A cache Concat reads the past first and the new keys last.
    const next = p.op_type === 'Concat' ? acts[acts.length - 1] : acts.length === 1 ? acts[0] : p.op_type === 'Reshape' || p.op_type === 'Transpose' ? p.input[0] : undefined;
    if (!next) return undefined;
    v = next;
  }
  return undefined;
}

/** The MatMul of two activations whose result (scaled, masked) the Softmax normalises. */
function scoresMatMul(g: OnnxGraph, sm: NodeProto, inside: Set<NodeProto>): NodeProto | undefined {
  let v = sm.input[0];
  for (let i = 0; i < 12; i++) {
    const p = g.producer.get(v);
    if (!p || !inside.has(p)) return undefined;
    if (p.op_type === 'MatMul' && !isWeightedLinear(g, p)) return p;
    if (!['Div', 'Mul', 'Add', 'Sub', 'Where', 'Cast', 'Reshape', 'Tanh', 'Identity'].includes(p.op_type)) return undefined;
    // Follow the operand that carries the scores (the one computed inside the branch).
    const operands = p.op_type === 'Where' ? p.input.slice(1) : p.input;
    const next = operands.find((x) => x && g.producer.get(x) && inside.has(g.producer.get(x)!) && !g.isConstant(x));
    if (!next) return undefined;
    v = next;
  }
  return undefined;
}

/**
 * The head split of a projection: the first Reshape after it (through splits, slices, bias adds
 * and reshapes that do not split) whose target reads [.., H, Dh] with H*Dh = the width. A head
 * size computed at run time ([b, s, H, -]) is solved from the width when H is constant.
 */
function headSplitOf(g: OnnxGraph, l: LinearInfo, inside: Set<NodeProto>, widths: number[]): { heads: number; headDim: number } | undefined {
  const start = g.nodeByName.get(l.node)!.output[0];
  const queue = [start];
  const seen = new Set(queue);
  for (let steps = 0; queue.length && steps < 64; steps++) {
    const v = queue.shift()!;
    for (const c of g.consumers.get(v) ?? []) {
      if (!inside.has(c)) continue;
      if (c.op_type === 'Reshape' && c.input[0] === v) {
        const shape = g.constantValues(c.input[1], true);
        const split = splitFromShape(shape, widths) ?? runtimeHeadSize(shape, widths);
        if (split) return split;
      }
      if (['Add', 'Split', 'Slice', 'Mul', 'Div', 'Cast', 'Identity', 'Gather', 'Reshape'].includes(c.op_type)) {
        for (const o of c.output) if (o && !seen.has(o)) {
        seen.add(o);
        queue.push(o);
      }
      }
    }
  }
  return undefined;
}

/** [b, s, H, ?] or [b, s, H, -1] with a constant H: the head size is the width over H. */
function runtimeHeadSize(shape: number[] | undefined, widths: number[]): { heads: number; headDim: number } | undefined {
  if (!shape || shape.length !== 4) return undefined;
  const h = shape[2];
  if (!Number.isFinite(h) || h <= 0 || (Number.isFinite(shape[3]) && shape[3] !== -1)) return undefined;
  const w = widths[0];
  return w % h === 0 ? { heads: h, headDim: w / h } : undefined;
}
