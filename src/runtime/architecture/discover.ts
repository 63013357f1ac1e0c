/**
 * Discovery: turns an ONNX graph into blocks, heads, components and hook points, using the
 * family adapters of families.ts. A graph no adapter explains is read from its structure
 * (structure.ts: the residual stream and its attention/MLP branches); one that neither
 * explains is reported as `unknown` with its raw module tree and a notice of what could not be
 * found; nothing is guessed.
 */
import type { OnnxGraph } from '../onnx/graph';
import { toNumber } from '../onnx/types';
import type { NodeProto } from '../onnx/types';
import { FAMILIES } from './families';
import type { AttentionRoles, FamilySpec, StackSpec } from './families';
import { headSplit } from './heads';
import { HookFinder, actName } from './hooks';
import { findLinear } from './linear';
import { ModuleIndex } from './modules';
import { FUSED_ATTENTION } from './residual';
import { NoStructure, discoverByStructure } from './structure';
import type { Architecture, AttentionInfo, BlockInfo, Component, Family, HookPoint, LinearInfo } from './types';

const FUSED_NORMS = new Set(['SkipLayerNormalization', 'SkipSimplifiedLayerNormalization', 'EmbedLayerNormalization']);

/** A role that could not be resolved; makes the adapter give up on this graph. */
class Unresolved extends Error {}

/** Discovers the architecture of a graph. */
export function discover(graph: OnnxGraph): Architecture {
  const idx = new ModuleIndex(graph);
  const tried: string[] = [];
  for (const spec of FAMILIES) {
    const found = stacksOf(idx, spec);
    if (found.length === 0) continue;
    try {
      return resolveFamily(idx, spec, found);
    } catch (e) {
      if (!(e instanceof Unresolved)) throw e;
      tried.push(`${spec.family}: ${e.message}`);
    }
  }
  // No module layout matched: read the blocks from the residual stream's structure instead.
  try {
    return discoverByStructure(idx);
  } catch (e) {
    if (!(e instanceof NoStructure)) throw e;
    tried.push(`by structure: ${e.message}`);
  }
  return unknown(idx, tried);
}

interface FoundStack {
  spec: StackSpec;
  prefix: string;
  paths: string[];
}

/** Block lists of a family present in the graph (indices must run 0..n-1). */
function stacksOf(idx: ModuleIndex, spec: FamilySpec): FoundStack[] {
  const out: FoundStack[] = [];
  for (const s of spec.stacks) {
    const byIndex = new Map<number, string>();
    let prefix = '';
    for (const p of idx.paths()) {
      const m = s.re.exec(p);
      if (!m) continue;
      prefix = m[1] ?? '';
      byIndex.set(Number(m[2]), p);
    }
    if (byIndex.size === 0) continue;
    const paths: string[] = [];
    for (let i = 0; i < byIndex.size; i++) {
      const p = byIndex.get(i);
      if (!p) break;
      paths.push(p);
    }
    if (paths.length === byIndex.size) out.push({ spec: s, prefix, paths });
  }
  return out;
}

function join(...parts: string[]): string {
  return parts.filter((p) => p.length > 0).join('.');
}

function firstExisting(idx: ModuleIndex, base: string, alts: string[] | undefined): string | undefined {
  for (const a of alts ?? []) {
    const p = join(base, a);
    if (idx.has(p)) return p;
  }
  return undefined;
}

function resolveFamily(idx: ModuleIndex, spec: FamilySpec, stacks: FoundStack[]): Architecture {
  const notices: string[] = [];
  let main = stacks.filter((s) => s.spec.stack === 'main');
  const enc = stacks.filter((s) => s.spec.stack === 'encoder');
  if (main.length === 0) {
    if (spec.family === 'encoder-decoder' && enc.length) {
      notices.push('This file holds only the encoder of an encoder-decoder model; its layers are shown as the blocks.');
      main = enc.splice(0, enc.length);
    } else throw new Unresolved('no main block stack');
  }
  const mainStack = main[0];
  const trailing: string[] = [];
  const blocks = mainStack.paths.flatMap((p, i) => {
    try {
      return [resolveBlock(idx, p, i, mainStack.spec, 'main')];
    } catch (e) {
      // Some exporters (onnxruntime-genai) scope the final norm as one more list item.
      if (e instanceof Unresolved && i > 0 && i === mainStack.paths.length - 1 && !idx.subtree(p).some((n) => n.op_type === 'MatMul')) {
        trailing.push(p);
        return [];
      }
      throw e;
    }
  });
  const encoderStack = enc[0];
  const encoderBlocks = encoderStack ? encoderStack.paths.map((p, i) => resolveBlock(idx, p, i, encoderStack.spec, 'encoder')) : [];
  if (spec.family === 'encoder-decoder' && !blocks.some((b) => b.crossAttention) && !notices.length) throw new Unresolved('no cross-attention');

  const prefix = mainStack.prefix;
  const sub = (alts: string[]): string[] => alts.map((a) => join(...a.replace('{prefix}', prefix).split('.')));
  const existing = (alts: string[]): string[] => sub(alts).filter((p) => idx.has(p));
  const embeddingPaths = existing(spec.embedding);
  const finalNormPath = existing(spec.finalNorm)[0] ?? trailing[0];
  const unembeddingPath = existing(spec.unembedding)[0];
  const projectionPath = existing(spec.projection)[0];

  const a0 = blocks[0].attention!;
  const dModel = a0.q?.inFeatures ?? a0.qkv?.inFeatures ?? a0.o?.outFeatures ?? 0;
  const tokenEmbed = tokenEmbedding(idx, embeddingPaths);
  const vocabSize = tokenEmbed ? toNumber(idx.graph.initializers.get(tokenEmbed.input[0])!.dims[0]) : undefined;

  const family: Family = spec.family;
  const fused = [...new Set(blocks.map((b) => b.attention?.fused).filter(Boolean))];
  if (fused.length) notices.push(`Attention is fused into ${fused.join(', ')} ops: per-head patterns, knockouts and contributions need an unfused export.`);

  const arch: Architecture = {
    family,
    layers: blocks.length,
    heads: a0.heads,
    kvHeads: a0.kvHeads,
    headDim: a0.headDim,
    dModel,
    vocabSize,
    embedding: embeddingPaths.length ? idx.component(embeddingPaths) : undefined,
    blocks,
    encoderBlocks,
    finalNorm: finalNormPath ? idx.component(finalNormPath) : undefined,
    unembedding: unembeddingPath ? idx.component(unembeddingPath) : undefined,
    projection: projectionPath ? idx.component(projectionPath) : undefined,
    hookPoints: [],
    notices,
    modules: idx.tree(),
    paramCount: idx.params(idx.graph.nodes).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0),
  };
  if (!arch.embedding) notices.push('Embedding not found.');
  // BART-style decoders may have no final norm; the other families always do.
  if (!arch.finalNorm && spec.finalNorm.length && spec.family !== 'encoder-decoder') notices.push('Final norm not found.');
  arch.hookPoints = findHooks(idx, arch, tokenEmbed, embeddingPaths, spec.family);
  // onnxruntime's fused norms (SkipLayerNormalization & co.) add the residual inside the norm
  // kernel and hand on both the sum and the normalised value; module boundaries then no longer
  // tell which is the residual stream, and unscoped graphs name blocks only through their
  // weights. The residual stream traced by structure does tell: use its hook points when it
  // finds the same blocks, else offer only the ones that cannot be wrong.
  const fusedNorms = [...new Set(idx.graph.nodes.filter((n) => FUSED_NORMS.has(n.op_type)).map((n) => n.op_type))];
  if (fusedNorms.length || (!idx.scoped && fused.length)) {
    const byStructure = structureHooks(idx, arch);
    if (byStructure) {
      arch.hookPoints = byStructure.hookPoints;
      arch.vocabSize ??= byStructure.vocabSize;
      if (!arch.finalNorm && byStructure.finalNorm) {
        arch.finalNorm = byStructure.finalNorm;
        notices.splice(notices.indexOf('Final norm not found.'), notices.includes('Final norm not found.') ? 1 : 0);
      }
      notices.push(...byStructure.notices.filter((n) => !/^Blocks found|^Attention is fused/.test(n)));
      return arch;
    }
    const safe = /\.hook_attn_out$|\.hook_cross_attn_out$/;
    const dropped = arch.hookPoints.filter((h) => !safe.test(h.name)).length;
    arch.hookPoints = idx.scoped ? arch.hookPoints.filter((h) => safe.test(h.name)) : [];
    if (dropped) notices.push(`Residual-stream hook points are not offered: ${fusedNorms.length ? `the graph fuses norms with the residual addition (${fusedNorms.join(', ')})` : 'the graph carries no module scopes'}; any tensor can still be captured by its ONNX name.`);
  }
  return arch;
}

/** Hook points of the residual stream traced by structure, when it finds the same blocks and heads. */
function structureHooks(idx: ModuleIndex, arch: Architecture): Architecture | undefined {
  let found: Architecture;
  try {
    found = discoverByStructure(idx);
  } catch (e) {
    if (e instanceof NoStructure) return undefined;
    throw e;
  }
  const same = found.layers === arch.layers && found.heads === arch.heads && found.blocks.every((b, i) => !!b.crossAttention === !!arch.blocks[i].crossAttention);
  return same ? found : undefined;
}

function resolveBlock(idx: ModuleIndex, path: string, index: number, s: StackSpec, stack: 'main' | 'encoder'): BlockInfo {
  const roles = s.roles;
  const attention = resolveAttention(idx, path, roles.attention, false);
  if (!attention) throw new Unresolved(`block ${path}: attention not found`);
  const crossAttention = roles.cross ? resolveAttention(idx, path, roles.cross, true) : undefined;
  const mlpIn = roles.mlpIn.map((alts) => firstExisting(idx, path, alts)).filter((p): p is string => !!p);
  const mlpOutPath = firstExisting(idx, path, roles.mlpOut);
  const mlpPath = firstExisting(idx, path, roles.mlp);
  const mlpPaths = mlpPath ? [mlpPath] : [...mlpIn, ...(mlpOutPath ? [mlpOutPath] : [])];
  const mlp = mlpPaths.length
    ? {
        ...idx.component(mlpPaths),
        in: mlpIn.map((p) => findLinear(idx, p)).filter((l): l is LinearInfo => !!l),
        out: mlpOutPath ? findLinear(idx, mlpOutPath) : undefined,
      }
    : undefined;
  const norms = roles.norms.map((alts) => firstExisting(idx, path, alts)).filter((p): p is string => !!p).map((p) => idx.component(p));
  return { ...idx.component(path), index, stack, attention, crossAttention, mlp, norms };
}

function resolveAttention(idx: ModuleIndex, block: string, roles: AttentionRoles, cross: boolean): AttentionInfo | undefined {
  const module = firstExisting(idx, block, roles.module);
  if (!module) return undefined;
  const lin = (alts?: string[]): LinearInfo | undefined => {
    const p = firstExisting(idx, block, alts);
    return p ? findLinear(idx, p) : undefined;
  };
  const q = lin(roles.q);
  const k = lin(roles.k);
  const v = lin(roles.v);
  const qkv = lin(roles.qkv);
  const o = lin(roles.o);
  const nodes = idx.subtree(module);
  const scope = new Set<NodeProto>(nodes);
  const fusedNode = nodes.find((n) => FUSED_ATTENTION.has(n.op_type));
  let heads = 0;
  let kvHeads = 0;
  let headDim = 0;
  if (fusedNode) {
    heads = idx.graph.attrInt(fusedNode, 'num_heads', 0)!;
    kvHeads = idx.graph.attrInt(fusedNode, 'kv_num_heads', heads)!;
    const width = q?.outFeatures ?? (qkv ? qkv.outFeatures / 3 : o?.inFeatures ?? 0);
    headDim = heads ? width / heads : 0;
  } else {
    const qOut = (l: LinearInfo | undefined): string[] => (l ? idx.outputs(idx.subtree(l.path)) : []);
    const qs = q ? headSplit(idx, qOut(q), scope, [q.outFeatures]) : qkv ? headSplit(idx, qOut(qkv), scope, [qkv.outFeatures / 3, qkv.outFeatures]) : undefined;
    if (qs) {
      heads = qs.heads;
      headDim = qs.headDim;
    }
    const ks = k ? headSplit(idx, qOut(k), scope, [k.outFeatures]) : undefined;
    kvHeads = ks ? ks.heads : heads;
  }
  if (!o || (!q && !qkv && !fusedNode)) throw new Unresolved(`${module}: projections not found`);
  if (!heads) throw new Unresolved(`${module}: head count not found in the graph (no head-splitting Reshape or num_heads attribute)`);
  const softmax = nodes.find((n) => n.op_type === 'Softmax')?.output[0];
  return {
    ...idx.component(module),
    heads,
    kvHeads,
    headDim,
    q,
    k,
    v,
    qkv,
    o,
    softmax,
    fused: fusedNode?.op_type,
    cross,
  };
}

/**
 * The Gather that looks token ids up in the embedding table: the one reading a token-id input
 * directly, else the one with the largest table (position tables are smaller than vocabularies).
 */
function tokenEmbedding(idx: ModuleIndex, embeddingPaths: string[]): NodeProto | undefined {
  const g = idx.graph;
  const lookups = idx.union(embeddingPaths).filter((n) => n.op_type === 'Gather' && g.initializers.get(n.input[0])?.dims.length === 2 && !g.isConstant(n.input[1]));
  const fedIds = (n: NodeProto): boolean => g.inputs.some((i) => i.name === n.input[1] && /ids$/.test(i.name) && !/position|type/.test(i.name));
  const rows = (n: NodeProto): number => toNumber(g.initializers.get(n.input[0])!.dims[0]);
  return lookups.find(fedIds) ?? [...lookups].sort((a, b) => rows(b) - rows(a))[0];
}

function findHooks(idx: ModuleIndex, arch: Architecture, tokenEmbed: NodeProto | undefined, embeddingPaths: string[], family: Family): HookPoint[] {
  const f = new HookFinder(idx);
  const vision = family === 'clip-vision' || family === 'vit';
  const embedOut = vision ? f.moduleOutput(embeddingPaths.slice(0, 1)) : tokenEmbed?.output[0];

  const stackHooks = (blocks: BlockInfo[], stack: 'blocks' | 'encoder', embed: string | undefined, avoid: Set<NodeProto>): void => {
    if (!blocks.length) return;
    const reach = f.downstream(embed ? [embed] : [], avoid);
    let prev = embed ? f.blockInput(blocks[0], reach) : undefined;
    for (const b of blocks) prev = f.addBlock(b, stack, prev);
  };

  if (arch.encoderBlocks.length) {
    // Encoder-decoder: each stack's embedding is the lookup that reaches its first block
    // without passing through the other stack.
    const encNodes = new Set(arch.encoderBlocks.flatMap((b) => idx.subtree(b.path)));
    const decNodes = new Set(arch.blocks.flatMap((b) => idx.subtree(b.path)));
    const gathers = idx.graph.nodes.filter((n) => n.op_type === 'Gather' && idx.graph.initializers.get(n.input[0])?.dims.length === 2 && !idx.graph.isConstant(n.input[1]));
    const reaches = (g: NodeProto, target: BlockInfo, avoid: Set<NodeProto>): boolean => {
      const r = f.downstream([g.output[0]], avoid);
      return idx.subtree(target.path).some((n) => n.input.some((i) => r.has(i)));
    };
    const encEmbed = gathers.find((g) => reaches(g, arch.encoderBlocks[0], decNodes));
    const decEmbed = gathers.find((g) => g !== encEmbed && reaches(g, arch.blocks[0], encNodes));
    f.add(actName('embed', undefined, 'encoder'), encEmbed?.output[0]);
    f.add(actName('embed'), decEmbed?.output[0]);
    stackHooks(arch.encoderBlocks, 'encoder', encEmbed?.output[0], decNodes);
    stackHooks(arch.blocks, 'blocks', decEmbed?.output[0], encNodes);
  } else {
    f.add(actName('embed'), embedOut);
    stackHooks(arch.blocks, 'blocks', embedOut, new Set());
  }
  if (arch.finalNorm) f.add(actName('ln_final'), lastOutput(idx, arch.finalNorm));
  return f.hooks;
}

function lastOutput(idx: ModuleIndex, c: Component): string | undefined {
  const outs = idx.outputs(idx.union(c.path.split(' + ')));
  return outs[outs.length - 1];
}

function unknown(idx: ModuleIndex, tried: string[]): Architecture {
  const notices: string[] = [];
  const fused = idx.graph.nodes.filter((n) => FUSED_ATTENTION.has(n.op_type));
  if (fused.length) {
    notices.push(`The graph uses ${fused.length} fused attention op(s) (${[...new Set(fused.map((n) => n.op_type))].join(', ')}) from onnxruntime's optimizer; blocks are not recognised yet in such graphs.`);
  }
  if (!idx.scoped) notices.push('Node names carry no module scopes (anonymous export); roles could not be read from names.');
  // onnxruntime's generation wrappers hold the whole model in subgraph attributes.
  const wrappers = idx.graph.nodes.filter((n) => n.attribute.some((a) => a.g || a.graphs?.length));
  if (wrappers.length) {
    const ops = [...new Set(wrappers.map((n) => (n.domain ? `${n.domain}.${n.op_type}` : n.op_type)))].join(', ');
    notices.push(`The model's layers live inside subgraphs of ${ops}: discovery reads the main graph only; export the model without the generation/control-flow wrapper (e.g. the encoder and decoder as plain graphs).`);
  }
  notices.push(
    tried.length
      ? `Unknown architecture: could not resolve embedding, blocks, attention and MLP roles (${tried.join('; ')}). The raw module tree is shown; any tensor can still be captured by name.`
      : 'Unknown architecture: no known block layout (GPT-2, LLaMA, BERT, CLIP, ViT, BART/T5) was found. The raw module tree is shown; any tensor can still be captured by name.',
  );
  return {
    family: 'unknown',
    layers: 0,
    heads: 0,
    kvHeads: 0,
    headDim: 0,
    dModel: 0,
    blocks: [],
    encoderBlocks: [],
    hookPoints: [],
    notices,
    modules: idx.tree(),
    paramCount: idx.params(idx.graph.nodes).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0),
  };
}
