/**
 * Cross-attention conditioning swap (LocoGen localization, DESIGN.md section 5).
 *
 * Cross-attention layers are the attention modules whose K and V projections read a
 * conditioning sequence C (an encoder's output, or a decoder file's `encoder_hidden_states`
 * input) instead of the layer's own stream. `findCrossAttention` checks that structurally:
 * the value each layer's k/v projection reads must not depend on the decoder's own token
 * stream, and must be a graph input or computed from an input other than the decoder's ids.
 *
 * `rewriteCrossAttention` makes layer i's k_proj and v_proj read `Where(mask_i, C_alt, C)`:
 * - `mechanist.cross.<i>.mask`: bool [B, 1, 1] (one flag per batch row), one per layer;
 * - `mechanist.cross.alt.<j>`: the alternative conditioning [1 or B, T, d], one per distinct
 *   conditioning value (one in every model seen so far);
 * so one batched run can give every row its own set of layers that see C_alt. Fed the scalar
 * defaults of `crossDefaults` (mask false) the model is unchanged. Conditioning values that
 * the graph computes itself (an encoder inside the graph) are also exposed as outputs, so a run
 * on the alternative prompt yields C_alt.
 *
 * C_alt must have C's shape after broadcasting: the same sequence length T. The attention mask
 * the cross-attention adds to its scores is shared by all layers, so a different length could
 * not be masked per layer; callers require prompts of equal token length (as LocoGen does).
 */
import type { Architecture, AttentionInfo, LinearInfo } from '../architecture/types';
import { downstream } from '../architecture/residual';
import { InputError } from '../feeds';
import type { OnnxGraph } from '../onnx/graph';
import type { OnnxModel } from '../onnx/model';
import { DataType } from '../onnx/types';
import type { ModelProto, NodeProto } from '../onnx/types';
import type { HostTensor } from '../tensor';
import { activationType, instrument } from './rewrite';

/** One cross-attention layer as found by structure. */
export interface CrossLayer {
  /** TransformerLens-style name, `blocks.L.cross_attn`. */
  name: string;
  /** Decoder block index. */
  block: number;
  /** Module path of the cross-attention (`model.decoder.layers.2.encoder_attn`). */
  path: string;
  /** For each of k and v: the conditioning value it reads and the node that reads it. */
  reads: { proj: 'k' | 'v'; conditioning: string; node: NodeProto }[];
}

export interface CrossStructure {
  layers: CrossLayer[];
  /** Distinct conditioning values, in order of first use. */
  conditioning: string[];
  /** The conditioning values that are graph inputs (fed from a separate encoder). */
  conditioningInputs: string[];
  /** The graph input holding the decoder's token ids, when found. */
  decoderIds?: string;
}

/** Ops a linear layer's module may put between its input and the MatMul/Gemm. */
const PASS_THROUGH = new Set(['Reshape', 'Flatten', 'Identity', 'Cast', 'Transpose']);

/** Graph inputs that `value` depends on (through any op). */
function inputAncestors(graph: OnnxGraph, value: string): Set<string> {
  const inputs = new Set(graph.inputs.map((i) => i.name));
  const found = new Set<string>();
  const seen = new Set([value]);
  const queue = [value];
  while (queue.length) {
    const v = queue.pop()!;
    if (inputs.has(v)) found.add(v);
    for (const i of graph.producer.get(v)?.input ?? []) {
      if (i && !seen.has(i)) {
        seen.add(i);
        queue.push(i);
      }
    }
  }
  return found;
}

/** The value a projection reads from outside its module, and the node reading it. */
function projectionInput(graph: OnnxGraph, attn: AttentionInfo, lin: LinearInfo): { value: string; node: NodeProto } {
  const inside = new Set(attn.nodes);
  let node = graph.nodeByName.get(lin.node);
  if (!node) throw new Error(`node "${lin.node}" of ${lin.path} is not in the graph`);
  let value = node.input[0];
  for (let i = 0; i < 8; i++) {
    const p = graph.producer.get(value);
    if (!p || !inside.has(graph.name(p)) || !PASS_THROUGH.has(p.op_type)) break;
    node = p;
    value = p.input[0];
  }
  return { value, node };
}

const INT_TYPES = new Set<number>([DataType.INT64, DataType.INT32]);

/**
 * Finds the cross-attention layers and their conditioning by structure; an InputError naming
 * the problem when the model has none, or when what discovery calls cross-attention reads the
 * decoder's own stream.
 */
export function findCrossAttention(graph: OnnxGraph, arch: Architecture): CrossStructure {
  const blocks = arch.blocks.filter((b) => b.crossAttention);
  if (!blocks.length) {
    const why =
      arch.family === 'encoder-decoder'
        ? 'this file holds only the encoder of an encoder-decoder: pass the decoder (or the whole model) as the model and this file with --encoder'
        : `the model (family ${arch.family}) has no attention whose keys and values read a conditioning sequence`;
    throw new InputError(`no cross-attention layers: ${why}. Localization needs an encoder-decoder (one graph, or a decoder exported with encoder_hidden_states as an input)`);
  }

  // The decoder's own stream: everything computed from its token embedding.
  const embed = arch.hookPoints.find((h) => h.name === 'hook_embed')?.tensor;
  let decoderIds: string | undefined;
  if (embed) decoderIds = [...inputAncestors(graph, embed)].find((i) => INT_TYPES.has(graph.types.get(i)?.elemType ?? 0));
  decoderIds ??= graph.inputs.find((i) => i.name === 'decoder_input_ids')?.name;
  const stream = downstream(graph, [embed, decoderIds].filter((v): v is string => !!v));

  const layers: CrossLayer[] = [];
  const conditioning: string[] = [];
  const inputNames = new Set(graph.inputs.map((i) => i.name));
  for (const b of blocks) {
    const ca = b.crossAttention!;
    const name = `blocks.${b.index}.cross_attn`;
    if (ca.fused || !ca.k || !ca.v) {
      throw new InputError(`${name} (${ca.path}) ${ca.fused ? `is a fused ${ca.fused} kernel` : 'has no separate K and V projections'}: its conditioning input cannot be swapped (export without attention fusion)`);
    }
    const reads: CrossLayer['reads'] = [];
    for (const proj of ['k', 'v'] as const) {
      const { value, node } = projectionInput(graph, ca, ca[proj]!);
      if (stream.has(value)) {
        throw new InputError(`${name}: its ${proj} projection (${ca[proj]!.path}) reads "${value}", which is computed from the decoder's own tokens; that is self-attention, not cross-attention over a conditioning sequence`);
      }
      if (!inputNames.has(value)) {
        const from = [...inputAncestors(graph, value)].filter((i) => i !== decoderIds);
        if (!from.length) throw new InputError(`${name}: its ${proj} projection reads "${value}", which depends on no model input: not a conditioning sequence`);
      }
      reads.push({ proj, conditioning: value, node });
      if (!conditioning.includes(value)) conditioning.push(value);
    }
    layers.push({ name, block: b.index, path: ca.path, reads });
  }
  return { layers, conditioning, conditioningInputs: conditioning.filter((c) => inputNames.has(c)), decoderIds };
}

/** The rewritten model and the names of what the rewrite added. */
export interface CrossRewrite {
  proto: ModelProto;
  structure: CrossStructure;
  /** Per layer (in `structure.layers` order): its bool mask input. */
  masks: string[];
  /** Conditioning value -> its alternative-value input. */
  alts: Map<string, string>;
  /** Conditioning value computed in the graph -> the output that carries it. */
  captured: Map<string, string>;
  /** Element type of the conditioning (and so of the alternative inputs). */
  elemType: number;
}

/** Rewires every cross-attention layer's k/v inputs to `Where(mask_i, C_alt, C)`. The original proto is untouched. */
export function rewriteCrossAttention(model: OnnxModel, graph: OnnxGraph, structure: CrossStructure): CrossRewrite {
  if (model.opset < 9) throw new InputError(`the conditioning swap needs opset 9 or later (Where); this model is opset ${model.opset}`);
  const inputNames = new Set(graph.inputs.map((i) => i.name));
  const computed = structure.conditioning.filter((c) => !inputNames.has(c));
  // instrument() gives a copy whose nodes may be edited, with weights referenced from the original file.
  const base = instrument(model, graph, { capture: computed, patch: [] });
  const g = base.proto.graph!;
  const nodes = g.node as NodeProto[];
  const inputs = [...g.input];
  const floatType = activationType(graph);
  const elemType = graph.types.get(structure.conditioning[0])?.elemType || floatType;
  const alts = new Map<string, string>();
  structure.conditioning.forEach((c, j) => {
    const name = `mechanist.cross.alt.${j}`;
    alts.set(c, name);
    inputs.push({ name, type: { tensor_type: { elem_type: graph.types.get(c)?.elemType || elemType } } });
  });
  const masks: string[] = [];
  structure.layers.forEach((layer, i) => {
    const mask = `mechanist.cross.${i}.mask`;
    masks.push(mask);
    inputs.push({ name: mask, type: { tensor_type: { elem_type: DataType.BOOL } } });
    const swapped = new Map<string, string>();
    for (const r of layer.reads) {
      let out = swapped.get(r.conditioning);
      if (!out) {
        out = `${r.conditioning}::cross.${i}`;
        swapped.set(r.conditioning, out);
        nodes.push({ name: `mechanist/cross_${i}/Where_${swapped.size - 1}`, op_type: 'Where', domain: '', input: [mask, alts.get(r.conditioning)!, r.conditioning], output: [out], attribute: [] });
      }
      const copy = nodes[graph.index(r.node)];
      if (!copy || copy.name !== r.node.name) throw new Error(`cannot locate node ${graph.name(r.node)} in the rewritten graph`);
      copy.input = copy.input.map((x) => (x === r.conditioning ? out! : x));
    }
  });
  const proto: ModelProto = { ...base.proto, graph: { ...g, node: nodes, input: inputs } };
  return { proto, structure, masks, alts, captured: base.captureOutputs, elemType };
}

/** Scalar feeds that leave every layer on its original conditioning. */
export function crossDefaults(r: Pick<CrossRewrite, 'masks' | 'alts' | 'elemType'>): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const m of r.masks) feeds[m] = { type: 'bool', data: new Uint8Array(1), dims: [] };
  for (const a of r.alts.values()) feeds[a] = r.elemType === DataType.FLOAT16 ? { type: 'float16', data: new Uint16Array(1), dims: [] } : { type: 'float32', data: new Float32Array(1), dims: [] };
  return feeds;
}

/** The [B, 1, 1] mask of one layer: true in the rows that read the alternative conditioning. */
export function layerMask(rows: boolean[]): HostTensor {
  return { type: 'bool', data: Uint8Array.from(rows, (x) => (x ? 1 : 0)), dims: [rows.length, 1, 1] };
}
