/**
 * Graph rewriting for instrumentation (DESIGN.md section 4):
 * - capture: a value becomes a graph output;
 * - patch: `x' = Where(mask, value, x)` with `mask`/`value` as new graph inputs; fed scalar
 *   defaults (mask false) they leave the model unchanged, so one session serves clean,
 *   corrupted and patched runs, and every batch row can patch something different. (They are
 *   plain inputs, not initializers with defaults: onnxruntime-node does not let a run override
 *   an initializer, so the runner feeds the defaults itself, see `patchDefaults`.);
 * - last-token logits: the unembedding applied to the last position only (what every method
 *   that scores a next token needs), so the [batch, seq, vocab] logits are never computed.
 * The rewritten model reads its weights from the original file(s) as external data, so the
 * weights are neither copied in memory nor duplicated on disk.
 */
import * as path from 'node:path';
import type { OnnxGraph } from '../onnx/graph';
import type { OnnxModel } from '../onnx/model';
import { DataType } from '../onnx/types';
import type { HostTensor } from '../tensor';
import type { BlockInfo } from '../architecture/types';
import { addScoreMasks } from './knockout';
import { int64s } from './graphParts';
import { placeholder } from './placeholder';
import { RestartUnsupported, makeRestartable } from './restart';
import { SKIP_NORMS } from '../architecture/residual';
import { unfuseSkipNorm } from '../architecture/unfuse';
import type { RestartInfo } from './restart';
import type { ScoreMaskInput } from './knockout';
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/types';

export interface InstrumentSpec {
  /** Values to expose as outputs (patched values are captured after the patch). */
  capture: string[];
  /** Values to make patchable. */
  patch: string[];
  /** Add `mechanist.last_logits` = logits at the last position, computed from `from` (the final norm's output). */
  lastTokenLogits?: { from: string; logits: string };
  /** Keep the model's own outputs (default true; false when last-token logits replace them). */
  keepOutputs?: boolean;
  /** Softmax outputs (attention patterns) whose scores get an additive mask input (attention knockout, see knockout.ts). */
  scoreMasks?: string[];
  /** Make the blocks restartable (restart.ts): each block's nodes and its block output tensor. */
  restart?: { blocks: BlockInfo[]; residPre0: string; residPost: string[]; suffix?: boolean; lastMlpOut?: string };
}

/** Names of the inputs/outputs a rewrite added. */
export interface Instrumented {
  proto: ModelProto;
  /** value -> its patch inputs */
  patchInputs: Map<string, { mask: string; value: string; elemType: number; maskType: number }>;
  /** value -> the output that carries it */
  captureOutputs: Map<string, string>;
  lastLogits?: string;
  /** With `lastLogits`: their softmax over the vocabulary, in float32. */
  lastProbs?: string;
  /** Softmax output -> its additive score-mask input (fed 0 by default). */
  scoreMasks?: Map<string, ScoreMaskInput>;
  /** Element type used for activations (the model's float type). */
  floatType: number;
  /** Set when the blocks are restartable. */
  restart?: RestartInfo;
}

/** Output name of the last-position logits. */
export const LAST_LOGITS = 'mechanist.last_logits';
/**
 * Output name of their softmax. onnxruntime's vectorised softmax costs next to nothing inside
 * a run; in JavaScript it was 0.24 s of a 4.5 s causal trace (2500 rows x 8192 logits).
 */
export const LAST_PROBS = 'mechanist.last_probs';

/** Inline weights smaller than this stay inline (externalising them saves nothing). */
const EXTERNALIZE_MIN_BYTES = 1024;

/** Element types onnxruntime's CPU Where kernel (opset 9+) accepts (not bool); older opsets blend floats. */
const WHERE_TYPES = new Set([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.INT32, DataType.INT64, DataType.UINT8]);
const BLEND_TYPES = new Set([DataType.FLOAT, DataType.DOUBLE]);

/** True when a value of this element type can be patched in a graph of this opset. */
export function patchableType(opset: number, elemType: number): boolean {
  if (opset < 7) return false; // no broadcasting Sub/Mul/Add before opset 7
  return opset < 9 ? BLEND_TYPES.has(elemType) : WHERE_TYPES.has(elemType);
}

/** The float type activations have: the type of the largest float initializer. */
export function activationType(graph: OnnxGraph): number {
  let best = DataType.FLOAT;
  let bestSize = -1;
  for (const t of graph.initializers.values()) {
    if (t.data_type !== DataType.FLOAT && t.data_type !== DataType.FLOAT16 && t.data_type !== DataType.BFLOAT16) continue;
    const n = t.dims.reduce<number>((a, d) => a * Number(d), 1);
    if (n > bestSize) {
      best = t.data_type;
      bestSize = n;
    }
  }
  return best;
}

/** A graph input/output declaration; no type when unknown (onnxruntime infers it), no shape (any). */
function valueInfo(name: string, elemType?: number): ValueInfoProto {
  return elemType ? { name, type: { tensor_type: { elem_type: elemType } } } : { name };
}

/** Scalar feeds that leave every patch point of `inst` inactive. */
export function patchDefaults(inst: Pick<Instrumented, 'patchInputs'> & Partial<Pick<Instrumented, 'scoreMasks'>>): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const p of inst.patchInputs.values()) {
    feeds[p.mask] = placeholder(p.maskType);
    feeds[p.value] = placeholder(p.elemType);
  }
  for (const m of inst.scoreMasks?.values() ?? []) feeds[m.input] = placeholder(m.elemType);
  return feeds;
}

/** The initializer list of the rewritten model: large inline weights become references into the original file. */
function externalized(model: OnnxModel, inits: TensorProto[]): TensorProto[] {
  if (!model.path) return inits;
  const location = path.basename(model.path);
  return inits.map((t) => {
    const at = model.inlineOffset(t);
    if (!at || at.length < EXTERNALIZE_MIN_BYTES) return t;
    return {
      ...t,
      raw_data: undefined,
      data_location: 1,
      external_data: [
        { key: 'location', value: location },
        { key: 'offset', value: String(at.offset) },
        { key: 'length', value: String(at.length) },
      ],
    } as TensorProto;
  });
}

/**
 * The fused Skip*LayerNormalization nodes whose residual sum is among the patched values: they
 * are unfused (Add, then the norm of that sum), so the normalised copy the next layer reads
 * follows the patch.
 */
export function normsToUnfuse(graph: OnnxGraph, patch: string[]): Set<NodeProto> {
  return new Set(patch.map((v) => graph.producer.get(v)).filter((p, i): p is NodeProto => !!p && SKIP_NORMS.has(p.op_type) && p.output[0] !== patch[i]));
}

/** Rewrites the model per `spec`. The original proto is not modified. */
export function instrument(model: OnnxModel, graph: OnnxGraph, spec: InstrumentSpec): Instrumented {
  const floatType = activationType(graph);
  const g = model.graph;
  const known = (v: string): boolean => graph.producer.has(v) || graph.types.has(v) || g.input.some((i) => i.name === v);
  for (const v of [...spec.capture, ...spec.patch, ...(spec.scoreMasks ?? [])]) if (!known(v)) throw new Error(`no value named "${v}" in the graph`);

  const unfuse = normsToUnfuse(graph, spec.patch);
  if (unfuse.size && spec.restart) throw new RestartUnsupported('fused norms are unfused for patching, which moves nodes the restart partition counts by position');
  const nodes: NodeProto[] = g.node.flatMap((n) => (unfuse.has(n) ? unfuseSkipNorm(graph, n) : [n])).map((n) => ({ ...n, input: [...n.input] }));
  const inputs: ValueInfoProto[] = [...g.input];
  const inits: TensorProto[] = externalized(model, g.initializer);
  const outputs: ValueInfoProto[] = spec.keepOutputs === false ? [] : [...g.output];
  const patchInputs = new Map<string, { mask: string; value: string; elemType: number; maskType: number }>();
  const captureOutputs = new Map<string, string>();
  const renamed = new Map<string, string>();

  [...new Set(spec.patch)].forEach((v, i) => {
    const mask = `mechanist.patch.${i}.mask`;
    const value = `mechanist.patch.${i}.value`;
    const out = `${v}::patched`;
    const elemType = graph.types.get(v)?.elemType || floatType;
    // Where needs opset 9; older graphs blend floats arithmetically: x + m * (v - x), exact for m = 0.
    const blend = model.opset < 9;
    if (!patchableType(model.opset, elemType)) {
      throw new Error(`cannot patch "${v}" (${DataType[elemType] ?? elemType}) in an opset ${model.opset} graph: patching needs opset 7+ for floats, 9+ for other types`);
    }
    const maskType = blend ? elemType : DataType.BOOL;
    // The inputs declare no shape: a run feeds scalar defaults (which broadcast to any shape
    // without changing it) or [batch, seq, 1...] masks and values.
    inputs.push(valueInfo(mask, maskType), valueInfo(value, elemType));
    for (const n of nodes) n.input = n.input.map((x) => (x === v ? out : x));
    if (blend) {
      const d = `mechanist/patch_${i}`;
      nodes.push(
        { name: `${d}/Sub`, op_type: 'Sub', domain: '', input: [value, v], output: [`${d}/diff`], attribute: [] },
        { name: `${d}/Mul`, op_type: 'Mul', domain: '', input: [mask, `${d}/diff`], output: [`${d}/step`], attribute: [] },
        { name: `${d}/Add`, op_type: 'Add', domain: '', input: [v, `${d}/step`], output: [out], attribute: [] },
      );
    } else {
      nodes.push({ name: `mechanist/patch_${i}/Where`, op_type: 'Where', domain: '', input: [mask, value, v], output: [out], attribute: [] });
    }
    patchInputs.set(v, { mask, value, elemType, maskType });
    renamed.set(v, out);
  });

  const scoreMasks = spec.scoreMasks?.length ? addScoreMasks(graph, nodes, inputs, spec.scoreMasks, floatType) : undefined;

  let lastLogits: string | undefined;
  let lastProbs: string | undefined;
  if (spec.lastTokenLogits) {
    lastLogits = LAST_LOGITS;
    lastProbs = LAST_PROBS;
    nodes.push(...lastTokenCopy(graph, spec.lastTokenLogits.from, spec.lastTokenLogits.logits, renamed.get(spec.lastTokenLogits.from) ?? spec.lastTokenLogits.from, inits));
    const float = floatType === DataType.FLOAT ? LAST_LOGITS : 'mechanist.last/float';
    if (float !== LAST_LOGITS) nodes.push({ name: 'mechanist/last/Cast', op_type: 'Cast', domain: '', input: [LAST_LOGITS], output: [float], attribute: [{ name: 'to', type: 2, i: DataType.FLOAT, floats: [], ints: [], strings: [], tensors: [], graphs: [] }] });
    // (axis -1: per row in every opset; before 13 the input is seen as [rows, vocabulary] either way.)
    nodes.push({ name: 'mechanist/last/Softmax', op_type: 'Softmax', domain: '', input: [float], output: [LAST_PROBS], attribute: [{ name: 'axis', type: 2, i: -1, floats: [], ints: [], strings: [], tensors: [], graphs: [] }] });
    outputs.push(valueInfo(LAST_LOGITS, floatType), valueInfo(LAST_PROBS, DataType.FLOAT));
  }

  for (const v of new Set(spec.capture)) {
    const name = renamed.get(v) ?? v;
    if (outputs.some((o) => o.name === name)) {
      captureOutputs.set(v, name);
      continue;
    }
    outputs.push(valueInfo(name, graph.types.get(v)?.elemType));
    captureOutputs.set(v, name);
  }

  const newGraph: GraphProto = { ...g, node: nodes, input: inputs, output: outputs, initializer: inits, value_info: g.value_info };
  const restart = spec.restart
    ? makeRestartable(
        newGraph,
        graph,
        spec.restart.blocks,
        renamed.get(spec.restart.residPre0) ?? spec.restart.residPre0,
        spec.restart.residPost.map((v) => renamed.get(v) ?? v),
        floatType,
        (v) => graph.types.get(v.replace(/::patched$/, ''))?.elemType,
        {
          suffix: spec.restart.suffix,
          opset: model.opset,
          // (Only where nothing but the last position's logits leaves the graph: lastMlp.ts.)
          lastMlpOut: spec.lastTokenLogits && spec.keepOutputs === false && spec.restart.lastMlpOut ? (renamed.get(spec.restart.lastMlpOut) ?? spec.restart.lastMlpOut) : undefined,
        },
      )
    : undefined;
  const proto: ModelProto = { ...model.proto, graph: newGraph };
  return { proto, patchInputs, captureOutputs, lastLogits, lastProbs, scoreMasks, floatType, restart };
}

/**
 * Copies the nodes between the final norm's output and the logits, fed with the last position
 * only (everything after the final norm is position-wise, so slicing first is exact).
 */
function lastTokenCopy(graph: OnnxGraph, from: string, logits: string, source: string, inits: TensorProto[]): NodeProto[] {
  // Nodes downstream of `from` that the logits depend on.
  const down = new Set<NodeProto>();
  const stack = [from];
  const seenV = new Set(stack);
  while (stack.length) {
    const v = stack.pop()!;
    for (const c of graph.consumers.get(v) ?? []) {
      if (down.has(c)) continue;
      down.add(c);
      for (const o of c.output) {
        if (o && !seenV.has(o)) {
          seenV.add(o);
          stack.push(o);
        }
      }
    }
  }
  const chain = new Set<NodeProto>();
  const up = [logits];
  const seenUp = new Set(up);
  while (up.length) {
    const p = graph.producer.get(up.pop()!);
    if (!p || !down.has(p) || chain.has(p)) continue;
    chain.add(p);
    for (const i of p.input) {
      if (i && !seenUp.has(i)) {
        seenUp.add(i);
        up.push(i);
      }
    }
  }
  if (!chain.size) throw new Error(`the logits "${logits}" do not depend on "${from}"`);
  const POSITIONWISE = new Set(['MatMul', 'Gemm', 'Add', 'Mul', 'Div', 'Sub', 'Cast', 'Identity', 'Tanh']);
  for (const n of chain) if (!POSITIONWISE.has(n.op_type)) throw new Error(`cannot compute last-token logits: ${n.op_type} between the final norm and the logits`);

  const sliced = 'mechanist.last/input';
  const cst = (name: string, v: bigint): void => {
    inits.push(int64s(name, [v]));
  };
  cst('mechanist.last/start', -1n);
  cst('mechanist.last/end', 9223372036854775807n);
  cst('mechanist.last/axis', 1n);
  const out: NodeProto[] = [
    { name: 'mechanist/last/Slice', op_type: 'Slice', domain: '', input: [source, 'mechanist.last/start', 'mechanist.last/end', 'mechanist.last/axis'], output: [sliced], attribute: [] },
  ];
  const rename = new Map<string, string>([[from, sliced]]);
  for (const n of graph.topological()) {
    if (!chain.has(n)) continue;
    const outs = n.output.map((o) => (o === logits ? LAST_LOGITS : `mechanist.last/${o}`));
    n.output.forEach((o, i) => rename.set(o, outs[i]));
    out.push({ ...n, name: `mechanist/last/${graph.name(n)}`, input: n.input.map((i) => rename.get(i) ?? i), output: outs, attribute: n.attribute });
  }
  return out;
}
