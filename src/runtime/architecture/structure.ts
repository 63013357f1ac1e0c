/**
 * Discovery from the graph's structure, for exports whose node names carry no module scopes
 * (older PyTorch exporters: `Gemm_1517`) and for graphs fused by onnxruntime's optimizer. The
 * residual stream (residual.ts) gives the blocks in order: each block is an attention branch,
 * an optional cross-attention branch and an MLP branch, each added back to the stream; roles.ts
 * reads each branch's projections and head split. Module paths come from the weights' names
 * where those are scoped (`h.0.attn.c_attn.weight_resize` -> `h.0.attn`), else `blocks.N...`.
 * Anything else (parallel attention/MLP, branches of unknown kind) is refused with a message.
 */
import type { OnnxGraph } from '../onnx/graph';
import type { NodeProto } from '../onnx/types';
import { actName } from './hooks';
import { linearOfNode } from './linear';
import type { ModuleIndex } from './modules';
import { branchRoles } from './roles';
import type { AttentionRolesFound, MlpRolesFound } from './roles';
import { FUSED_ATTENTION, NORM_OPS, SKIP_NORMS, isNorm, isWeightedLinear, normPath, topoPositions, traceSpine } from './residual';
import type { Junction, Spine } from './residual';
import { CannotUnfuse, unfuseSkipNorm } from './unfuse';
import type { Architecture, AttentionInfo, BlockInfo, Component, Family, HookPoint, LinearInfo } from './types';

/** Why the structure did not match a transformer (the message says what did not match). */
export class NoStructure extends Error {}

interface FoundBlock {
  attn: { j: Junction; r: AttentionRolesFound };
  cross?: { j: Junction; r: AttentionRolesFound };
  mlp: { j: Junction; r: MlpRolesFound };
}


/** Discovers blocks, heads and hook points from structure alone, or throws NoStructure. */
export function discoverByStructure(idx: ModuleIndex): Architecture {
  const g = idx.graph;
  let spine: Spine;
  try {
    spine = traceSpine(g);
  } catch (e) {
    throw new NoStructure(e instanceof Error ? e.message : String(e));
  }
  const branches = spine.junctions.map((j, i) => {
    try {
      return { j, r: branchRoles(idx, j, `blocks.${i}`) };
    } catch (e) {
      throw new NoStructure(e instanceof Error ? e.message : String(e));
    }
  });
  const kinds = branches.map((b) => (b.r.kind === 'mlp' ? 'mlp' : b.r.cross ? 'cross-attention' : 'attention'));
  const found: FoundBlock[] = [];
  for (let i = 0; i < branches.length; ) {
    const a = branches[i];
    const c = branches[i + 1]?.r.kind === 'attention' && (branches[i + 1].r as AttentionRolesFound).cross ? branches[i + 1] : undefined;
    const m = branches[i + (c ? 2 : 1)];
    if (a.r.kind !== 'attention' || a.r.cross || !m || m.r.kind !== 'mlp') {
      throw new NoStructure(`the residual branches run ${kinds.join(', ')}: expected attention, [cross-attention,] MLP for every block (parallel or MLP-less layouts are not recognised)`);
    }
    found.push({ attn: { j: a.j, r: a.r }, cross: c ? { j: c.j, r: c.r as AttentionRolesFound } : undefined, mlp: { j: m.j, r: m.r } });
    i += c ? 3 : 2;
  }
  return assemble(idx, spine, found);
}

function assemble(idx: ModuleIndex, spine: Spine, found: FoundBlock[]): Architecture {
  const g = idx.graph;
  const notices: string[] = [];
  const junctions = spine.junctions;
  // The stream between junctions: a norm (post-norm layouts) or a Cast (exports cast before a norm).
  const stepTo = (k: number): NodeProto[] => {
    const prev = junctions[k];
    const next = junctions[k + 1];
    if (!prev.out || !next || next.skip === prev.out) return [];
    return normPath(g, prev.out, next.skip) ?? [];
  };
  const postNorm = junctions.some((_, k) => isNorm(stepTo(k)));
  // What lies on the stream after junction k: a post-norm layout's norm ends the block before
  // (its output is that block's resid_post, after the last junction too); a mere Cast starts
  // the next one (the block before hands on the sum itself).
  const normAfter = (k: number): NodeProto[] => (!postNorm ? [] : k === junctions.length - 1 ? (junctions[k].out ? (normChain(g, junctions[k].out!)?.nodes ?? []) : []) : stepTo(k));
  const castBefore = (k: number): NodeProto[] => (postNorm || k === 0 ? [] : stepTo(k - 1));
  const blocks: BlockInfo[] = [];
  const hooks: HookPoint[] = [];
  const add = (name: string, tensor: string | undefined, layer?: number): void => {
    if (tensor) hooks.push({ name, tensor, layer, shape: g.shape(tensor) });
  };
  // A residual value that a fused norm emits next to its normalised copy (Skip*LayerNorm's sum,
  // EmbedLayerNorm's embedding sum) can be captured, but a patch of it would not reach that
  // copy, which the next block reads. The instrumenter unfuses a Skip*LayerNorm whose sum it
  // patches (unfuse.ts), so those sums are offered when the node can be unfused; the others
  // (EmbedLayerNorm, or a Skip norm whose mean/inverse-std outputs are read) are not.
  const unpatchable: string[] = [];
  const addResid = (name: string, tensor: string | undefined, layer?: number): void => {
    const p = tensor ? g.producer.get(tensor) : undefined;
    if (tensor && p && (SKIP_NORMS.has(p.op_type) || p.op_type === 'EmbedLayerNormalization') && tensor !== p.output[0] && (g.consumers.get(p.output[0]) ?? []).length) {
      let unfusable = SKIP_NORMS.has(p.op_type);
      try {
        if (unfusable) unfuseSkipNorm(g, p);
      } catch (e) {
        if (!(e instanceof CannotUnfuse)) throw e;
        unfusable = false;
      }
      if (!unfusable) {
        unpatchable.push(`${name} = ${tensor}`);
        return;
      }
    }
    add(name, tensor, layer);
  };
  if (spine.tokenEmbed) add(actName('embed'), spine.tokenEmbed.output[0]);
  let biasNotice = false;
  found.forEach((f, L) => {
    const ks = [f.attn.j, f.cross?.j, f.mlp.j].filter((x): x is Junction => !!x).map((j) => junctions.indexOf(j));
    const attnNodes = f.attn.j.nodes;
    const mlpNodes = f.mlp.j.nodes;
    // Module paths from the projections' weight names (norm weights would widen the prefix).
    const weighted = (nodes: NodeProto[]): NodeProto[] => nodes.filter((n) => isWeightedLinear(g, n) || FUSED_ATTENTION.has(n.op_type));
    const base = commonPath([...paramNames(g, weighted(attnNodes)), ...paramNames(g, weighted(mlpNodes))]) ?? `blocks.${L}`;
    const attention = attentionInfo(idx, f.attn.j, f.attn.r, pathOr(g, weighted(attnNodes), `${base}.attn`));
    const crossAttention = f.cross ? attentionInfo(idx, f.cross.j, f.cross.r, pathOr(g, weighted(f.cross.j.nodes), `${base}.cross_attn`)) : undefined;
    const mlpPath = pathOr(g, weighted(mlpNodes), `${base}.mlp`);
    const mlp = { ...component(idx, mlpPath, mlpNodes), in: f.mlp.r.in.map((l, i) => ({ ...l, path: `${mlpPath}.${f.mlp.r.in.length > 1 ? `in${i}` : 'in'}` })), out: { ...f.mlp.r.out, path: `${mlpPath}.out` } };
    const norms = [f.attn.j, f.cross?.j, f.mlp.j].filter((x): x is Junction => !!x).map((j, i) => normOf(idx, j, `${base}.ln_${i + 1}`)).filter((c): c is Component => !!c);
    const own = [...new Set<NodeProto>([...attnNodes, ...(f.cross?.j.nodes ?? []), ...mlpNodes, ...ks.flatMap((k) => [...castBefore(k), junctions[k].node, ...normAfter(k)])])];
    blocks.push({ ...component(idx, base, own), index: L, stack: 'main', attention, crossAttention, mlp, norms });

    // The stream entering a block is the previous block's output; a Cast between them (exports
    // cast the stream before a norm) is the same value, so name the output, as scopes would.
    const k0 = junctions.indexOf(f.attn.j);
    const prevOut = k0 > 0 && !postNorm ? junctions[k0 - 1].out : undefined;
    addResid(actName('resid_pre', L), prevOut && stepTo(k0 - 1).length ? prevOut : f.attn.j.skip, L);
    if (!f.attn.r.fused) {
      add(actName('pattern', L), f.attn.r.softmax, L);
      add(actName('z', L), f.attn.r.z, L);
    }
    add(actName('attn_out', L), f.attn.j.branch, L);
    if (f.cross) {
      if (!f.cross.r.fused) {
        add(actName('cross_pattern', L), f.cross.r.softmax, L);
        add(actName('cross_z', L), f.cross.r.z, L);
      }
      add(actName('cross_attn_out', L), f.cross.j.branch, L);
    }
    add(actName('post', L), f.mlp.r.post, L);
    add(actName('mlp_out', L), f.mlp.j.branch, L);
    const last = ks[ks.length - 1];
    const sum = junctions[last].out ?? exposeSum(g, junctions[last].node);
    addResid(actName('resid_post', L), postNorm && sum ? (junctions[last + 1]?.skip ?? normChain(g, sum)?.out) : sum, L);
    if ([f.attn.j, f.cross?.j, f.mlp.j].some((j) => j && SKIP_NORMS.has(j.node.op_type) && j.node.input[4])) biasNotice = true;
  });
  withPlumbing(g, blocks);
  if (unpatchable.length) {
    notices.push(
      `Residual-stream hook points are not offered where a fused norm that cannot be unfused (EmbedLayerNormalization, or a Skip norm whose statistics outputs are read) computes the residual sum together with its normalised copy: a patch of the sum would not reach the copy the next layer reads. They can still be captured by ONNX name: ${unpatchable.slice(0, 4).join(', ')}${unpatchable.length > 4 ? `, ... (${unpatchable.length} in all)` : ''}.`,
    );
  }
  if (biasNotice) notices.push("hook_attn_out / hook_mlp_out exclude the output projection's bias, which the graph adds inside SkipLayerNormalization (a constant, so patching them is unaffected).");

  const lastSum = hooks.filter((h) => h.name.endsWith('hook_resid_post')).pop()?.tensor;
  const lastJ = junctions[junctions.length - 1];
  const final = postNorm ? undefined : SKIP_NORMS.has(lastJ.node.op_type) ? { nodes: [lastJ.node], out: lastJ.node.output[0] } : lastSum ? normChain(g, lastSum) : undefined;
  if (final) add(actName('ln_final'), final.out);
  const a0 = blocks[0].attention!;
  const table = spine.tokenEmbed ? g.initializerOf(spine.tokenEmbed.input[0]) : spine.embedNorm ? g.initializerOf(spine.embedNorm.input[2]) : undefined;
  const vocabSize = table ? Number(table.dims[0]) : undefined;
  const unembed = vocabSize ? unembedding(idx, final?.out ?? lastSum, vocabSize) : undefined;
  const embedNodes = embeddingNodes(g, spine);
  const fusedAttn = [...new Set(blocks.flatMap((b) => [b.attention?.fused, b.crossAttention?.fused]).filter(Boolean))];
  if (fusedAttn.length) notices.push(`Attention is fused into ${fusedAttn.join(', ')} ops: block-level hook points only; per-head patterns, knockouts and contributions need an unfused export.`);
  if (!spine.tokenEmbed) notices.push(spine.embedNorm ? 'hook_embed is not offered: the token and position embeddings are summed inside EmbedLayerNormalization.' : `The graph starts from a hidden-state input (${spine.start}), not token ids: no embedding.`);
  const family = familyOf(g, found, postNorm);
  notices.unshift(
    `Blocks found from the graph's structure (${idx.scoped ? 'the module scopes matched no known layout' : 'node names carry no module scopes'}): ${blocks.length} block(s) of attention${found.some((f) => f.cross) ? ', cross-attention' : ''} and MLP on the residual stream; layout ${postNorm ? 'post-norm' : 'pre-norm'}, reported as ${family}.`,
  );
  return {
    family,
    layers: blocks.length,
    heads: a0.heads,
    kvHeads: a0.kvHeads,
    headDim: a0.headDim,
    dModel: a0.o?.outFeatures ?? 0,
    vocabSize,
    embedding: embedNodes.length ? component(idx, commonPath(paramNames(g, embedNodes)) ?? 'embeddings', embedNodes) : undefined,
    blocks,
    encoderBlocks: [],
    finalNorm: final ? component(idx, commonPath(paramNames(g, final.nodes)) ?? 'ln_final', final.nodes) : undefined,
    unembedding: unembed ? component(idx, unembed.path, [g.nodeByName.get(unembed.node)!]) : undefined,
    hookPoints: hooks,
    notices,
    modules: idx.tree(),
    paramCount: idx.params(g.nodes).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0),
  };
}

/**
 * Adds to each block the shape plumbing only it uses (Shape -> Gather -> Concat -> Reshape
 * targets computed from its own activations), so that a block is self-contained: nothing
 * outside it reads its inner values (restartable blocks need that).
 */
function withPlumbing(g: OnnxGraph, blocks: BlockInfo[]): void {
  const cores = blocks.map((b) => new Set(b.nodes.map((n) => g.nodeByName.get(n)!)));
  const taken = new Set<NodeProto>(cores.flatMap((c) => [...c]));
  const graphOut = new Set(g.outputs.map((o) => o.name));
  blocks.forEach((b, l) => {
    const mine = cores[l];
    const queue = [...mine];
    while (queue.length) {
      const n = queue.pop()!;
      for (const i of n.input) {
        const p = i ? g.producer.get(i) : undefined;
        if (!p || taken.has(p)) continue;
        const onlyHere = p.output.every((o) => !o || (!graphOut.has(o) && (g.consumers.get(o) ?? []).every((c) => mine.has(c))));
        if (!onlyHere) continue;
        mine.add(p);
        taken.add(p);
        queue.push(p);
      }
    }
    const pos = topoPositions(g);
    const nodes = [...mine].sort((a, c) => pos.get(a)! - pos.get(c)!);
    b.nodes = nodes.map((n) => g.name(n));
  });
}

function attentionInfo(idx: ModuleIndex, j: Junction, r: AttentionRolesFound, path: string): AttentionInfo {
  const rename = (l: LinearInfo | undefined, role: string): LinearInfo | undefined => (l ? { ...l, path: `${path}.${role}` } : undefined);
  return {
    ...component(idx, path, j.nodes),
    heads: r.heads,
    kvHeads: r.kvHeads,
    headDim: r.headDim,
    q: rename(r.q, 'q'),
    k: rename(r.k, 'k'),
    v: rename(r.v, 'v'),
    qkv: rename(r.qkv, 'qkv'),
    o: rename(r.o, 'o'),
    softmax: r.softmax,
    fused: r.fused?.op_type,
    cross: r.cross,
  };
}

function component(idx: ModuleIndex, path: string, nodes: NodeProto[]): Component {
  const params = idx.params(nodes);
  return { path, nodes: nodes.map((n) => idx.graph.name(n)), params, paramCount: params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0) };
}

/** Scoped-looking names of the weights a node set reads (`h.0.attn.c_attn.weight_resize`). */
function paramNames(g: OnnxGraph, nodes: NodeProto[]): string[] {
  const out: string[] = [];
  for (const n of nodes) for (const i of n.input) if (i && g.initializers.has(i) && /^[A-Za-z_][\w]*(\.[\w]+)+$/.test(i) && (g.initializers.get(i)!.dims.length ?? 0) > 0) out.push(i);
  return out;
}

/** The longest dotted prefix shared by all names (without the last segment), if any. */
function commonPath(names: string[]): string | undefined {
  if (!names.length) return undefined;
  const split = names.map((n) => n.split('.').slice(0, -1));
  const first = split[0];
  let k = 0;
  while (k < first.length && split.every((s) => s[k] === first[k])) k++;
  return k > 0 ? first.slice(0, k).join('.') : undefined;
}

function pathOr(g: OnnxGraph, nodes: NodeProto[], fallback: string): string {
  return commonPath(paramNames(g, nodes)) ?? fallback;
}

/** The norm a branch opens with (before its first linear layer), or the fused Skip norm feeding it. */
function normOf(idx: ModuleIndex, j: Junction, path: string): Component | undefined {
  const g = idx.graph;
  const nodes: NodeProto[] = [];
  for (const n of j.nodes) {
    if (isWeightedLinear(g, n) || FUSED_ATTENTION.has(n.op_type) || !NORM_OPS.has(n.op_type)) break;
    nodes.push(n);
  }
  const src = g.producer.get(j.skip);
  if (!nodes.length && src && (SKIP_NORMS.has(src.op_type) || src.op_type === 'EmbedLayerNormalization')) nodes.push(src);
  return nodes.length ? component(idx, pathOr(g, nodes, path), nodes) : undefined;
}

/**
 * A norm applied to `v` (a LayerNormalization-like op or its decomposed ReduceMean/Sub/Pow/...
 * form): its nodes and normalised output, or undefined when `v` is not normalised next.
 */
function normChain(g: OnnxGraph, v: string): { nodes: NodeProto[]; out: string } | undefined {
  const values = new Set([v]);
  const nodes: NodeProto[] = [];
  let grew = true;
  while (grew) {
    grew = false;
    for (const val of [...values]) {
      for (const c of g.consumers.get(val) ?? []) {
        if (nodes.includes(c) || !NORM_OPS.has(c.op_type)) continue;
        if (!c.input.every((i) => !i || values.has(i) || g.isConstant(i))) continue;
        nodes.push(c);
        for (const o of c.output) if (o) values.add(o);
        grew = true;
      }
    }
  }
  if (!nodes.some((n) => ['LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization', 'ReduceMean'].includes(n.op_type))) return undefined;
  // The normalised value: produced by the chain and read by something outside it (or a graph output).
  const graphOut = new Set(g.outputs.map((o) => o.name));
  const inside = new Set(nodes);
  const outs = nodes.flatMap((n) => n.output.filter((o) => o && (graphOut.has(o) || (g.consumers.get(o) ?? []).some((c) => !inside.has(c)))));
  const pos = topoPositions(g);
  const ordered = nodes.sort((a, b) => pos.get(a)! - pos.get(b)!);
  return outs.length === 1 ? { nodes: ordered, out: outs[0] } : undefined;
}

/** The linear layer reading the final stream whose width is the vocabulary (tied or not). */
function unembedding(idx: ModuleIndex, from: string | undefined, vocab: number): LinearInfo | undefined {
  if (!from) return undefined;
  const g = idx.graph;
  const queue = [from];
  const seen = new Set(queue);
  for (let steps = 0; queue.length && steps < 32; steps++) {
    const v = queue.shift()!;
    for (const c of g.consumers.get(v) ?? []) {
      // (Tied embeddings read the table through a Transpose: linearOfNode sees through it.)
      const l = isWeightedLinear(g, c) ? linearOfNode(idx, c, commonPath(paramNames(g, [c])) ?? 'unembed') : undefined;
      if (l && l.outFeatures === vocab) return l;
      if (['Reshape', 'Cast', 'Identity', 'Squeeze', 'Gather', 'Slice'].includes(c.op_type)) for (const o of c.output) if (o && !seen.has(o)) {
        seen.add(o);
        queue.push(o);
      }
    }
  }
  return undefined;
}

/** Nodes between the token lookup (or the fused embedding op) and the first block. */
function embeddingNodes(g: OnnxGraph, spine: Spine): NodeProto[] {
  if (spine.embedNorm) return [spine.embedNorm];
  if (!spine.tokenEmbed) return [];
  const first = spine.junctions[0];
  const out: NodeProto[] = [spine.tokenEmbed];
  // Walk back from block 0's input to the lookups: position/type lookups, sums, an embedding norm.
  const queue = [first.skip];
  const seen = new Set(queue);
  while (queue.length) {
    const v = queue.pop()!;
    const p = g.producer.get(v);
    if (!p || out.includes(p) || !['Add', 'Gather', 'LayerNormalization', 'Mul', 'Cast', ...NORM_OPS].includes(p.op_type)) continue;
    if (p.op_type === 'Gather' && !g.initializerOf(p.input[0])) continue;
    out.push(p);
    for (const i of p.input) if (i && !g.isConstant(i) && !seen.has(i)) {
        seen.add(i);
        queue.push(i);
      }
  }
  const pos = topoPositions(g);
  return out.sort((a, b) => pos.get(a)! - pos.get(b)!);
}

/**
 * Names the optional residual-sum output (index 3) of a Skip*LayerNormalization that leaves it
 * unnamed, so the stream after the last block is a real tensor that can be captured and patched.
 * The op computes it anyway; naming it changes no other output.
 */
function exposeSum(g: OnnxGraph, n: NodeProto): string | undefined {
  if (!SKIP_NORMS.has(n.op_type)) return undefined;
  const name = `${g.name(n)}/mechanist.residual_sum`;
  while (n.output.length < 3) n.output.push('');
  n.output[3] = name;
  g.producer.set(name, n);
  return name;
}

function familyOf(g: OnnxGraph, found: FoundBlock[], postNorm: boolean): Family {
  if (found.some((f) => f.cross)) return 'encoder-decoder';
  if (postNorm) return 'bert';
  const rms = g.nodes.some((n) => ['SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'RMSNormalization'].includes(n.op_type)) || !g.nodes.some((n) => n.op_type === 'Sub' || n.op_type === 'LayerNormalization' || n.op_type === 'SkipLayerNormalization');
  const gated = found.every((f) => f.mlp.r.in.length >= 2);
  return rms || gated ? 'llama' : 'gpt2';
}
