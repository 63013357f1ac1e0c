/** A model's discovered structure as plain JSON (the CLI's `inspect`, the Layer Explorer's data). */
import { discover } from './architecture/discover';
import type { Architecture, AttentionInfo, BlockInfo, Component, LinearInfo, ModuleTree } from './architecture/types';
import { OnnxGraph } from './onnx/graph';
import { OnnxModel } from './onnx/model';
import { dataTypeName } from './onnx/types';

export interface IoInfo {
  name: string;
  dtype: string;
  shape: (number | string | null)[];
}

export interface ComponentSummary {
  path: string;
  nodes: string[];
  params: { name: string; shape: number[]; dtype: string }[];
  paramCount: number;
}

export interface AttentionSummary extends ComponentSummary {
  heads: number;
  kvHeads: number;
  headDim: number;
  fused?: string;
  projections: Record<string, { weight: string; inFeatures: number; outFeatures: number; path: string }>;
}

export interface BlockSummary extends ComponentSummary {
  index: number;
  attention?: AttentionSummary;
  crossAttention?: AttentionSummary;
  mlp?: ComponentSummary & { projections: Record<string, { weight: string; inFeatures: number; outFeatures: number; path: string }> };
  norms: ComponentSummary[];
}

/** What `mechanist inspect --json` prints. */
export interface ModelSummary {
  path: string;
  family: Architecture['family'];
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  dModel: number;
  vocabSize?: number;
  paramCount: number;
  opset: number;
  producer: string;
  externalData: string[];
  embedding?: ComponentSummary;
  blocks: BlockSummary[];
  encoderBlocks: BlockSummary[];
  finalNorm?: ComponentSummary;
  unembedding?: ComponentSummary;
  projection?: ComponentSummary;
  hookPoints: string[];
  hookTensors: Record<string, string>;
  inputs: IoInfo[];
  outputs: IoInfo[];
  notices: string[];
  modules: ModuleTree;
}

/** Loads, indexes and discovers a model. */
export function openModel(file: string): { model: OnnxModel; graph: OnnxGraph; arch: Architecture } {
  const model = OnnxModel.load(file);
  const graph = OnnxGraph.build(model);
  return { model, graph, arch: discover(graph) };
}

/** The JSON summary of a discovered model. */
export function summarize(model: OnnxModel, graph: OnnxGraph, arch: Architecture): ModelSummary {
  const io = (v: { name: string }): IoInfo => {
    const t = graph.types.get(v.name);
    return { name: v.name, dtype: dataTypeName(t?.elemType ?? 0), shape: (t?.shape ?? []).map((d) => d ?? null) };
  };
  return {
    path: model.path,
    family: arch.family,
    layers: arch.layers,
    heads: arch.heads,
    kvHeads: arch.kvHeads,
    headDim: arch.headDim,
    dModel: arch.dModel,
    vocabSize: arch.vocabSize,
    paramCount: arch.paramCount,
    opset: model.opset,
    producer: [model.proto.producer_name, model.proto.producer_version].filter(Boolean).join(' '),
    externalData: model.externalFiles(),
    embedding: comp(arch.embedding),
    blocks: arch.blocks.map(block),
    encoderBlocks: arch.encoderBlocks.map(block),
    finalNorm: comp(arch.finalNorm),
    unembedding: comp(arch.unembedding),
    projection: comp(arch.projection),
    hookPoints: arch.hookPoints.map((h) => h.name),
    hookTensors: Object.fromEntries(arch.hookPoints.map((h) => [h.name, h.tensor])),
    inputs: graph.inputs.map(io),
    outputs: graph.outputs.map(io),
    notices: arch.notices,
    modules: arch.modules,
  };
}

function comp<T extends Component | undefined>(c: T): ComponentSummary | undefined {
  return c && { path: c.path, nodes: c.nodes, params: c.params, paramCount: c.paramCount };
}

function projections(list: Record<string, LinearInfo | undefined>): AttentionSummary['projections'] {
  const out: AttentionSummary['projections'] = {};
  for (const [k, l] of Object.entries(list)) if (l) out[k] = { weight: l.weight, inFeatures: l.inFeatures, outFeatures: l.outFeatures, path: l.path };
  return out;
}

function attention(a: AttentionInfo | undefined): AttentionSummary | undefined {
  if (!a) return undefined;
  return { ...comp(a)!, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, fused: a.fused, projections: projections({ q: a.q, k: a.k, v: a.v, qkv: a.qkv, o: a.o }) };
}

function block(b: BlockInfo): BlockSummary {
  return {
    ...comp(b)!,
    index: b.index,
    attention: attention(b.attention),
    crossAttention: attention(b.crossAttention),
    mlp: b.mlp && { ...comp(b.mlp)!, projections: projections({ ...Object.fromEntries(b.mlp.in.map((l, i) => [`in${i}`, l])), out: b.mlp.out }) },
    norms: b.norms.map((n) => comp(n)!),
  };
}
