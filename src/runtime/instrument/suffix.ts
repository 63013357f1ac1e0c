/**
 * Suffix runs of restartable blocks: a run that starts at block s may also start at token t0,
 * computing only positions t0.. of blocks s.. . In a causal model the positions before t0
 * depend only on earlier positions, so when they are unchanged (a causal trace restores one
 * token; every position before it is as in the corrupted run) their keys and values can come
 * from an earlier run instead of being recomputed, as a KV cache does during generation.
 *
 * Per block, the rewrite finds the attention's key and value tensors (walking back from the
 * two MatMuls around the Softmax through transposes, see `kvPoints`) and makes each read
 *
 *   k' = If(mechanist.suffix, then: Concat(mechanist.past.<l>.k, k), else: k)
 *
 * Values that blocks read from outside the residual stream (causal masks [.., query, key],
 * rotary tables [.., position, dim]) cover every position; in a suffix run their query axis
 * (the second to last, by the convention of every exporter we know; for a table sliced from
 * constants along one axis, that axis) is cut to the last S' = entry length positions. The key axis stays whole, and shape-derived masks (GPT-2 slices
 * its causal mask by key length minus query length) see the concatenated keys.
 *
 * Anything this cannot see (a Reshape inside a block fed a length computed outside it, a
 * position id gathered inside a block) makes a suffix run wrong or fail; callers verify a
 * suffix run against a full one before relying on it (see causalTrace's probe).
 */
import { DataType } from '../onnx/types';
import type { AttributeProto, GraphProto, NodeProto } from '../onnx/types';
import { attr, ifNode, int64s, node, typed } from './graphParts';

export const SUFFIX_INPUT = 'mechanist.suffix';

/** Why a graph's blocks cannot run on a suffix (the caller restarts blocks at full length). */
export class SuffixUnsupported extends Error {}

/** Where one block's keys or values are joined with the fed prefix. */
export interface KvPoint {
  block: number;
  /** `k` or `v`. */
  role: 'k' | 'v';
  /** The tensor (as named in the rewritten graph) that is captured and extended. */
  value: string;
  /** Its sequence axis (negative: from the end). */
  axis: number;
  /** The graph input that takes the prefix [batch, .., t0 on `axis`, ..]. */
  input: string;
  /** Element type of the value and its input. */
  elemType: number;
}

export interface SuffixInfo {
  kv: KvPoint[];
}

const SCORE_PATH = new Set(['Add', 'Sub', 'Mul', 'Div', 'Where', 'Cast']);
const PATTERN_PATH = new Set(['Cast', 'Dropout', 'Identity', 'Where']);

/** The value and sequence axis a MatMul operand traces back to through Transposes (inside the block). */
function traceBack(v: string, axis: number, producerOf: (v: string) => NodeProto | undefined, attrInts: (n: NodeProto, a: string) => number[] | undefined): { value: string; axis: number } {
  for (;;) {
    const p = producerOf(v);
    if (!p || p.op_type !== 'Transpose') return { value: v, axis };
    const perm = attrInts(p, 'perm');
    if (!perm) return { value: v, axis }; // default perm reverses: rank unknown here, stop
    const a = axis < 0 ? axis + perm.length : axis;
    if (a < 0 || a >= perm.length) return { value: v, axis };
    axis = perm[a];
    v = p.input[0];
  }
}

/**
 * Rewrites `g` for suffix runs. `blockOf[i]` is node i's block (-1: main graph); new nodes are
 * appended to `g.node` and `blockOf`. `softmax[l]` is block l's attention pattern value.
 */
export function addSuffixRuns(
  g: GraphProto,
  blockOf: number[],
  blockIn: string[],
  softmax: (string | undefined)[],
  floatType: number,
  elemTypeOf: (v: string) => number | undefined,
  entryInput: string,
  opset: number,
): SuffixInfo {
  // The added Slice, Gather and Tile nodes take their inputs as opset 11 defines them.
  if (opset < 11) throw new SuffixUnsupported(`suffix runs need opset 11 or later; this graph is opset ${opset}`);
  const producer = new Map<string, number>();
  g.node.forEach((n, i) => n.output.forEach((o) => o && producer.set(o, i)));
  const inits = new Set(g.initializer.map((t) => t.name));
  const inputs = new Map(g.input.map((i) => [i.name, i.type?.tensor_type?.elem_type]));
  const attrInts = (n: NodeProto, a: string): number[] | undefined => {
    const x = n.attribute.find((y) => y.name === a);
    return x?.ints.length ? x.ints.map(Number) : undefined;
  };
  const typeOf = elementTypes(g, producer, inits, inputs, elemTypeOf);
  const fromInputs = inputDependence(g);
  const blocks = [...new Set(blockOf.filter((b) => b >= 0))].sort((a, b) => a - b);
  const kv: KvPoint[] = [];
  const newNodes: { node: NodeProto; block: number }[] = [];
  const sliced = new Map<string, string>();

  // The query-axis cut shared by every external value: Slice(x, -S', MAX) on axis -2.
  g.initializer.push(int64s('mechanist.suffix/zero', [0n]), int64s('mechanist.suffix/one', [1n]), int64s('mechanist.suffix/two', [2n]), int64s('mechanist.suffix/max', [9223372036854775807n]), int64s('mechanist.suffix/axis', [-2n]));
  const cutQueries = (x: string): string => {
    let out = sliced.get(x);
    if (out) return out;
    out = `${x}::suffix`;
    const d = `mechanist/suffix/cut_${sliced.size}`;
    const axis = positionAxis(g, x, producer, inits);
    const axisName = axis === -2 ? 'mechanist.suffix/axis' : `mechanist.suffix/axis_m${-axis}`;
    if (!g.initializer.some((t) => t.name === axisName)) g.initializer.push(int64s(axisName, [BigInt(axis)]));
    const then = [
      node(`${d}/Shape`, 'Shape', [entryInput], [`${d}/shape`]),
      node(`${d}/Len`, 'Slice', [`${d}/shape`, 'mechanist.suffix/one', 'mechanist.suffix/two'], [`${d}/len`]),
      node(`${d}/Neg`, 'Neg', [`${d}/len`], [`${d}/start`]),
      node(`${d}/Slice`, 'Slice', [x, `${d}/start`, 'mechanist.suffix/max', axisName], [`${d}/out`]),
    ];
    newNodes.push({ node: ifNode(`${d}/If`, SUFFIX_INPUT, out, typeOf(x) ?? floatType, then, `${d}/out`, x), block: -1 });
    sliced.set(x, out);
    return out;
  };

  for (const l of blocks) {
    const members = g.node.map((_, i) => i).filter((i) => blockOf[i] === l);
    const memberSet = new Set(members);
    const inBlock = (v: string): NodeProto | undefined => {
      const p = producer.get(v);
      return p !== undefined && memberSet.has(p) ? g.node[p] : undefined;
    };
    const sm = softmax[l];
    const smNode = sm === undefined ? undefined : members.map((i) => g.node[i]).find((n) => n.op_type === 'Softmax' && n.output[0] === sm);
    if (!smNode) throw new SuffixUnsupported(`block ${l}: no attention Softmax was found inside it`);

    // Values: the MatMul the pattern feeds (through casts, dropout and patch points).
    let vSide: string | undefined;
    const forward = [smNode.output[0]];
    const seenF = new Set(forward);
    while (forward.length && !vSide) {
      const x = forward.shift()!;
      for (const i of members) {
        const n = g.node[i];
        if (!n.input.includes(x)) continue;
        if (n.op_type === 'MatMul' && n.input[0] === x) vSide = n.input[1];
        else if (PATTERN_PATH.has(n.op_type) && !seenF.has(n.output[0])) {
          seenF.add(n.output[0]);
          forward.push(n.output[0]);
        }
      }
    }
    // Keys: the MatMul of queries and keys behind the scores (through scaling and masking).
    let kSide: string | undefined;
    const back = [smNode.input[0]];
    const seenB = new Set(back);
    while (back.length && !kSide) {
      const n = inBlock(back.shift()!);
      if (!n) continue;
      if (n.op_type === 'MatMul' && inBlock(n.input[0]) && inBlock(n.input[1])) kSide = n.input[1];
      else if (SCORE_PATH.has(n.op_type)) {
        for (const x of n.input) {
          if (x && !seenB.has(x)) {
            seenB.add(x);
            back.push(x);
          }
        }
      }
    }
    if (!kSide || !vSide) throw new SuffixUnsupported(`block ${l}: the attention's ${kSide ? 'value' : 'key'} MatMul was not found`);

    for (const [role, side, axis] of [['k', kSide, -1], ['v', vSide, -2]] as const) {
      const at = traceBack(side, axis, inBlock, attrInts);
      if (!inBlock(at.value)) throw new SuffixUnsupported(`block ${l}: the attention's ${role === 'k' ? 'keys' : 'values'} are not computed inside it`);
      const input = `mechanist.past.${l}.${role}`;
      // Activations, of the model's float type unless cast (fp16 models upcasting attention).
      const elem = typeOf(at.value) ?? floatType;
      g.input.push(typed(input, elem));
      const joined = `${at.value}::kv`;
      const d = `mechanist/suffix/${l}/${role}`;
      for (const i of members) g.node[i].input = g.node[i].input.map((x) => (x === at.value ? joined : x));
      // The prefix may be fed whole (every position of an earlier run: the graph keeps the
      // first S - S') and once per corrupted sample ([samples, ..]: rows repeat the samples in
      // order, so it is tiled along the batch to the run's rows).
      const axisT = `mechanist.suffix/axis_${at.axis < 0 ? `m${-at.axis}` : at.axis}`;
      if (!g.initializer.some((t) => t.name === axisT)) g.initializer.push(int64s(axisT, [BigInt(at.axis)]));
      const then = [
        node(`${d}/XShape`, 'Shape', [at.value], [`${d}/xs`]),
        node(`${d}/PShape`, 'Shape', [input], [`${d}/ps`]),
        node(`${d}/XLen`, 'Gather', [`${d}/xs`, axisT], [`${d}/xl`]),
        node(`${d}/PLen`, 'Gather', [`${d}/ps`, axisT], [`${d}/pl`]),
        node(`${d}/Keep`, 'Sub', [`${d}/pl`, `${d}/xl`], [`${d}/keep`]),
        node(`${d}/Prefix`, 'Slice', [input, 'mechanist.suffix/zero', `${d}/keep`, axisT], [`${d}/prefix`]),
        node(`${d}/XRows`, 'Slice', [`${d}/xs`, 'mechanist.suffix/zero', 'mechanist.suffix/one'], [`${d}/xb`]),
        node(`${d}/PRows`, 'Slice', [`${d}/ps`, 'mechanist.suffix/zero', 'mechanist.suffix/one'], [`${d}/pb`]),
        node(`${d}/Times`, 'Div', [`${d}/xb`, `${d}/pb`], [`${d}/n`]),
        node(`${d}/PRest`, 'Slice', [`${d}/ps`, 'mechanist.suffix/one', 'mechanist.suffix/max'], [`${d}/pr`]),
        node(`${d}/Ones`, 'Div', [`${d}/pr`, `${d}/pr`], [`${d}/ones`]),
        node(`${d}/Reps`, 'Concat', [`${d}/n`, `${d}/ones`], [`${d}/reps`], [attr('axis', { type: 2, i: 0 })]),
        node(`${d}/Tile`, 'Tile', [`${d}/prefix`, `${d}/reps`], [`${d}/tiled`]),
        node(`${d}/Concat`, 'Concat', [`${d}/tiled`, at.value], [`${d}/out`], [attr('axis', { type: 2, i: at.axis })]),
      ];
      newNodes.push({ node: ifNode(`${d}/If`, SUFFIX_INPUT, joined, elem, then, `${d}/out`, at.value), block: l });
      if (!g.output.some((o) => o.name === at.value)) g.output.push(typed(at.value, elem));
      kv.push({ block: l, role, value: at.value, axis: at.axis, input, elemType: elem });
    }

    // Float values the block reads from outside its stream get their query axis cut.
    for (const i of members) {
      const n = g.node[i];
      n.input = n.input.map((x) => {
        if (!x || x === blockIn[l] || inits.has(x) || x.startsWith('mechanist.')) return x;
        const p = producer.get(x);
        if (p === undefined || memberSet.has(p) || !fromInputs(x)) return x;
        const t = typeOf(x);
        return t === DataType.FLOAT || t === DataType.FLOAT16 || t === DataType.BFLOAT16 || t === DataType.DOUBLE ? cutQueries(x) : x;
      });
    }
  }
  for (const { node: n, block } of newNodes) {
    g.node.push(n);
    blockOf.push(block);
  }
  g.input.push(typed(SUFFIX_INPUT, DataType.BOOL));
  return { kv };
}

/**
 * The position axis (negative) of a value blocks read from outside: the second to last, unless the
 * value is a table of constants cut to the sequence along one other axis (llama2.c-style rotary
 * tables [positions, 1, dim, 1] sliced on axis 0).
 */
function positionAxis(g: GraphProto, x: string, producer: Map<string, number>, inits: Set<string>): number {
  const p = producer.get(x);
  const n = p === undefined ? undefined : g.node[p];
  if (!n || n.op_type !== 'Slice' || n.input.length < 4 || !inits.has(n.input[0]) || !inits.has(n.input[3])) return -2;
  const table = g.initializer.find((t) => t.name === n.input[0]);
  const axes = g.initializer.find((t) => t.name === n.input[3]);
  if (!table || !axes || axes.dims.reduce<number>((a, b) => a * Number(b), 1) !== 1) return -2;
  const rank = table.dims.length;
  const raw = axes.raw_data && axes.raw_data.length >= 8 ? Number(new DataView(axes.raw_data.buffer, axes.raw_data.byteOffset, 8).getBigInt64(0, true)) : axes.int64_data.length ? Number(axes.int64_data[0]) : axes.int32_data.length ? Number(axes.int32_data[0]) : undefined;
  if (raw === undefined || rank < 2) return -2;
  const a = raw < 0 ? raw : raw - rank;
  return a >= -rank && a <= -2 ? a : -2;
}

/** A small element-type inference over the ops exporters put around masks and rotary tables. */
function elementTypes(g: GraphProto, producer: Map<string, number>, inits: Set<string>, inputs: Map<string, number | undefined>, known: (v: string) => number | undefined): (v: string) => number | undefined {
  const initType = new Map(g.initializer.map((t) => [t.name, t.data_type]));
  const memo = new Map<string, number | undefined>();
  const INT64 = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'TopK']);
  const BOOL = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
  const typeOf = (v: string, depth = 0): number | undefined => {
    if (memo.has(v)) return memo.get(v);
    let t = known(v) || initType.get(v) || inputs.get(v) || undefined;
    const p = producer.get(v);
    if (!t && p !== undefined && depth < 500) {
      const n = g.node[p];
      const a = (name: string): AttributeProto | undefined => n.attribute.find((x) => x.name === name);
      if (n.op_type === 'Cast') t = Number(a('to')?.i ?? 0) || undefined;
      else if (INT64.has(n.op_type)) t = DataType.INT64;
      else if (BOOL.has(n.op_type)) t = DataType.BOOL;
      else if (n.op_type === 'Constant') t = a('value')?.t?.data_type;
      else if (n.op_type === 'ConstantOfShape') t = a('value')?.t?.data_type ?? DataType.FLOAT;
      else if (n.op_type === 'Where') t = typeOf(n.input[1], depth + 1) ?? typeOf(n.input[2], depth + 1);
      // Most ops keep the type of their first (data) input.
      else if (n.input[0]) t = typeOf(n.input[0], depth + 1);
    }
    memo.set(v, t);
    return t;
  };
  return (v) => typeOf(v);
}

/** Whether a value depends on a graph input (masks, position tables), not only on weights and constants. */
function inputDependence(g: GraphProto): (v: string) => boolean {
  const consumers = new Map<string, NodeProto[]>();
  for (const n of g.node) for (const x of n.input) if (x) consumers.set(x, [...(consumers.get(x) ?? []), n]);
  const dependent = new Set(g.input.map((i) => i.name));
  const queue = [...dependent];
  while (queue.length) {
    for (const n of consumers.get(queue.pop()!) ?? []) {
      for (const o of n.output) {
        if (o && !dependent.has(o)) {
          dependent.add(o);
          queue.push(o);
        }
      }
    }
  }
  return (v) => dependent.has(v);
}
