/**
 * Restartable blocks: each block of the main stack becomes an `If` node, so a run can start at
 * any block from a residual stream fed from outside, and the blocks before it are not
 * computed at all (onnxruntime executes only the taken branch). One session then serves runs
 * that start anywhere, with the weights held once: the branches read the outer graph's
 * initializers.
 *
 *   block l:  y_l = If(l < start, then: entry, else: <the block's own nodes>)
 *
 * `mechanist.start` (int64 scalar) and `mechanist.entry` ([batch, seq, d]) are new inputs:
 * start 0 runs everything (entry unused); start s feeds `entry` as block s-1's output. Patch
 * points and captures inside a block move into its branch; captured values leave the If as
 * extra outputs (the skipped branch gives scalar zeros). `mechanist.capture` (bool scalar)
 * gates them: off, a computed block hands on scalar zeros too. onnxruntime allocates every
 * output of an If whether fetched or not, and holds it to the end of the run: a restoration,
 * which fetches only logits, would otherwise keep every block's captures and keys and values
 * alive (about 50 MiB at 60 rows on the bench model, fresh memory for each new shape).
 */
import type { BlockInfo } from '../architecture/types';
import type { OnnxGraph } from '../onnx/graph';
import { DataType } from '../onnx/types';
import type { GraphProto, NodeProto, TensorProto } from '../onnx/types';
import type { HostTensor } from '../tensor';
import { attr, graph, ifNode, int64Scalar, node, typed, zeroScalar } from './graphParts';
import { placeholder } from './placeholder';
import { cutLastMlp } from './lastMlp';
import { addSuffixRuns, SUFFIX_INPUT } from './suffix';
import type { SuffixInfo } from './suffix';

export const START_INPUT = 'mechanist.start';
export const ENTRY_INPUT = 'mechanist.entry';
export const CAPTURE_INPUT = 'mechanist.capture';

/** Why a graph cannot be made restartable (the caller falls back to full runs). */
export class RestartUnsupported extends Error {}

export interface RestartInfo {
  /** The residual value each block hands on (as named in the rewritten graph). */
  blockOutputs: string[];
  floatType: number;
  /** Set when runs may also start at a token (suffix.ts). */
  suffix?: SuffixInfo;
}

/**
 * Rewrites `g` (an instrumented copy of `original`; its first nodes are the original's, in
 * order) in place. `blockIn0` is the residual stream entering block 0 and `blockOut[l]` block
 * l's residual output, as named in `g` (after patches).
 */
export function makeRestartable(
  g: GraphProto,
  original: OnnxGraph,
  blocks: BlockInfo[],
  blockIn0: string,
  blockOut: string[],
  floatType: number,
  elemTypeOf: (v: string) => number | undefined,
  opts: { suffix?: boolean; opset?: number; lastMlpOut?: string } = {},
): RestartInfo {
  const blockIn = [blockIn0, ...blockOut.slice(0, -1)];
  if (!blocks.length) throw new RestartUnsupported('no blocks');
  const origCount = original.nodes.length;
  const producer = new Map<string, number>();
  g.node.forEach((n, i) => n.output.forEach((o) => o && producer.set(o, i)));

  // Which block each node belongs to: original nodes by module subtree; added nodes (patch
  // points) go with the block that produces the value they read.
  const blockOf: number[] = new Array<number>(g.node.length).fill(-1);
  blocks.forEach((b, l) => {
    for (const name of b.nodes) {
      const n = original.nodeByName.get(name);
      if (n) blockOf[original.index(n)] = l;
    }
  });
  for (let i = origCount; i < g.node.length; i++) {
    const n = g.node[i];
    const from = n.input.map((x) => producer.get(x)).find((p) => p !== undefined && blockOf[p] >= 0);
    if (from !== undefined && n.op_type === 'Where') blockOf[i] = blockOf[from];
  }

  // Only what depends on the residual stream entering a block belongs to it. The rest of a
  // block's nodes (constants, rotary tables, masks: exporters share these between blocks) stay
  // in the main graph, computed whatever the start.
  // (To a fixed point, not in node order: patch points come last, after the nodes reading them.)
  blocks.forEach((_, l) => {
    const stream = new Set<string>([blockIn[l]]);
    const members = blockOf.flatMap((b, i) => (b === l ? [i] : []));
    const inStream = new Set<number>();
    for (let grew = true; grew; ) {
      grew = false;
      for (const i of members) {
        const n = g.node[i];
        if (inStream.has(i) || !n.input.some((x) => stream.has(x))) continue;
        inStream.add(i);
        n.output.forEach((o) => o && stream.add(o));
        grew = true;
      }
    }
    for (const i of members) if (!inStream.has(i)) blockOf[i] = -1;
  });

  let suffix: SuffixInfo | undefined;
  if (opts.suffix) {
    suffix = addSuffixRuns(g, blockOf, blockIn, blocks.map((b) => b.attention?.softmax), floatType, elemTypeOf, ENTRY_INPUT, opts.opset ?? 0);
    // A suffix run may start at block 0 too: its input is then the fed entry.
    const in0 = 'mechanist.restart/in0';
    for (let i = 0; i < g.node.length; i++) if (blockOf[i] === 0) g.node[i].input = g.node[i].input.map((x) => (x === blockIn0 ? in0 : x));
    const thenOut = `${in0}::entry`;
    g.node.push(ifNode('mechanist/restart/in0/If', SUFFIX_INPUT, in0, floatType, [node('mechanist/restart/in0/entry', 'Identity', [ENTRY_INPUT], [thenOut])], thenOut, blockIn0));
    blockOf.push(-1);
    // Runs that read only the last position's logits need the last block's MLP only there.
    if (opts.lastMlpOut) cutLastMlp(g, blockOf, blocks.length - 1, blockOut[blocks.length - 1], opts.lastMlpOut, { suffix: SUFFIX_INPUT, capture: CAPTURE_INPUT }, new Set(g.initializer.map((t) => t.name)), elemTypeOf(blockOut[blocks.length - 1]) ?? floatType);
  }
  // The keys and values leave their blocks as captures, in their own type (a cast may precede them).
  const kvType = new Map((suffix?.kv ?? []).map((p) => [p.value, p.elemType]));
  const typeOut = (v: string): number | undefined => kvType.get(v) ?? elemTypeOf(v);

  const consumers = new Map<string, number[]>();
  g.node.forEach((n, i) =>
    n.input.forEach((x) => {
      if (!x) return;
      const list = consumers.get(x) ?? [];
      list.push(i);
      consumers.set(x, list);
    }),
  );
  const graphOutputs = new Set(g.output.map((o) => o.name));

  const newNodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const done = new Set<number>();
  // Each block is replaced, where its last node stood (after everything its nodes read), by Less + If.
  const lastIndex = blocks.map(() => -1);
  blockOf.forEach((b, i) => {
    if (b >= 0) lastIndex[b] = i;
  });
  for (let i = 0; i < g.node.length; i++) {
    const l = blockOf[i];
    if (l < 0) {
      newNodes.push(g.node[i]);
      continue;
    }
    if (i !== lastIndex[l] || done.has(l)) continue;
    done.add(l);
    const members = g.node.map((_, j) => j).filter((j) => blockOf[j] === l);
    const memberSet = new Set(members);
    // Values leaving the block: its residual output, and captures (graph outputs).
    const leaving = new Set<string>();
    for (const j of members) {
      for (const o of g.node[j].output) {
        if (!o) continue;
        const outside = (consumers.get(o) ?? []).some((c) => !memberSet.has(c));
        if (outside || graphOutputs.has(o)) leaving.add(o);
      }
    }
    if (!leaving.has(blockOut[l])) throw new RestartUnsupported(`block ${l}'s output ${blockOut[l]} is not produced inside it`);
    for (const v of leaving) {
      if (v === blockOut[l] || graphOutputs.has(v)) continue;
      // A value the block computes for others (e.g. a mask shared with later blocks): skipping
      // the block would leave it undefined.
      throw new RestartUnsupported(`block ${l} hands ${v} to other nodes besides its output`);
    }
    const extra = [...leaving].filter((v) => v !== blockOut[l]);
    const inner = (v: string): string => `${v}::in_block`;
    const rename = new Map([...leaving].map((v) => [v, inner(v)]));
    const body = topoSort(
      members.map((j) => {
        const n = g.node[j];
        return { ...renameReads(n, rename), output: n.output.map((o) => rename.get(o) ?? o) };
      }),
    );
    const outs = [blockOut[l], ...extra];
    // The zeros a skipped block, or a computed one not capturing, hands on for its captures
    // (in the main graph: both branches read them).
    const zeros = extra.map((v, k) => zeroScalar(`mechanist.restart/${l}/zero_${k}`, typeOut(v) ?? floatType));
    inits.push(...zeros);
    // (A captured value that nodes after the block read as well is handed on whole, ungated.)
    const readAfter = (v: string): boolean => (consumers.get(v) ?? []).some((c) => !memberSet.has(c));
    const gated = extra.map((v, k) => {
      if (readAfter(v)) return { output: inner(v) };
      const name = `mechanist.restart/${l}/gated_${k}`;
      return { output: name, node: ifNode(`${name}/If`, CAPTURE_INPUT, name, zeros[k].data_type, [node(`${name}/on/Identity`, 'Identity', [inner(v)], [`${name}/on`])], `${name}/on`, zeros[k].name) };
    });
    const elseBranch = graph(
      `mechanist_block_${l}`,
      [...body, ...gated.flatMap((x) => (x.node ? [x.node] : []))],
      [typed(inner(blockOut[l]), typeOut(blockOut[l]) ?? floatType), ...gated.map((x, k) => typed(x.output, zeros[k].data_type))],
    );
    const thenOut = `mechanist.restart/${l}/entry`;
    const thenBranch = graph(
      `mechanist_skip_${l}`,
      [node(`mechanist/restart/${l}/Identity`, 'Identity', [ENTRY_INPUT], [thenOut]), ...zeros.map((z, k) => node(`mechanist/restart/${l}/Zero_${k}`, 'Identity', [z.name], [`${z.name}/out`]))],
      [typed(thenOut, floatType), ...zeros.map((z) => typed(`${z.name}/out`, z.data_type))],
    );
    const index = `mechanist.restart/${l}/index`;
    const cond = `mechanist.restart/${l}/skip`;
    inits.push(int64Scalar(index, BigInt(l)));
    newNodes.push(
      node(`mechanist/restart/${l}/Less`, 'Less', [index, START_INPUT], [cond]),
      node(`mechanist/restart/${l}/If`, 'If', [cond], outs, [attr('then_branch', { type: 5, g: thenBranch }), attr('else_branch', { type: 5, g: elseBranch })]),
    );
  }
  g.node = newNodes;
  g.initializer = [...g.initializer, ...inits];
  g.input = [
    ...g.input,
    typed(START_INPUT, DataType.INT64),
    typed(ENTRY_INPUT, floatType),
    typed(CAPTURE_INPUT, DataType.BOOL),
  ];
  return { blockOutputs: blockOut, floatType, suffix };
}

/** `n` reading renamed values, also inside its subgraphs (an If's branches read outer values by name). */
function renameReads(n: NodeProto, rename: Map<string, string>): NodeProto {
  const attribute = n.attribute.map((a) => {
    if (!a.g) return a;
    const own = new Set(a.g.node.flatMap((x) => x.output));
    const inner = new Map([...rename].filter(([k]) => !own.has(k)));
    return { ...a, g: { ...a.g, node: a.g.node.map((x) => renameReads(x, inner)) } };
  });
  return { ...n, input: n.input.map((x) => rename.get(x) ?? x), attribute };
}

/** The values a node reads: its inputs and what its subgraphs read from outside them. */
function reads(n: NodeProto): string[] {
  const out = [...n.input];
  for (const a of n.attribute) {
    if (!a.g) continue;
    const own = new Set(a.g.node.flatMap((x) => x.output));
    for (const x of a.g.node) for (const r of reads(x)) if (r && !own.has(r)) out.push(r);
  }
  return out;
}

/** Orders nodes so each comes after the producers of its inputs (patch points were appended last). */
function topoSort(nodes: NodeProto[]): NodeProto[] {
  const producedBy = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output) if (o) producedBy.set(o, n);
  const out: NodeProto[] = [];
  const state = new Map<NodeProto, 1 | 2>();
  const visit = (n: NodeProto): void => {
    if (state.get(n) === 2) return;
    if (state.get(n) === 1) throw new RestartUnsupported(`a cycle through ${n.name}`);
    state.set(n, 1);
    for (const x of reads(n)) {
      const p = producedBy.get(x);
      if (p) visit(p);
    }
    state.set(n, 2);
    out.push(n);
  };
  nodes.forEach(visit);
  return out;
}

/** Feeds that run every block (start 0; the entry is unused). */
export function restartDefaults(floatType: number, capture = true): Record<string, HostTensor> {
  return {
    [START_INPUT]: placeholder(DataType.INT64),
    [ENTRY_INPUT]: placeholder(floatType === DataType.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT),
    [CAPTURE_INPUT]: captureFlag(capture),
  };
}

/**
 * Feeds that start at block `block` with `entry` as the residual stream block `block - 1` would
 * have produced; `capture` off hands scalar zeros for the blocks' captured values.
 */
export function restartFeeds(block: number, entry: HostTensor, capture = true): Record<string, HostTensor> {
  return { [START_INPUT]: { type: 'int64', data: BigInt64Array.from([BigInt(block)]), dims: [] }, [ENTRY_INPUT]: entry, [CAPTURE_INPUT]: captureFlag(capture) };
}

function captureFlag(on: boolean): HostTensor {
  return { type: 'bool', data: Uint8Array.from([on ? 1 : 0]), dims: [] };
}
