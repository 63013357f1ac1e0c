/**
 * Module paths from exporter scope names. PyTorch scopes node names by module
 * (`/transformer/h.3/attn/c_proj/Gemm` -> `transformer.h.3.attn.c_proj`), TensorFlow
 * exporters by variable scope (`bert/encoder/layer_._0/...`); nodes without a scope fall back
 * to the parameter names of the weights they read (`bert.encoder.layer.0.output.dense.weight`).
 */
import type { OnnxGraph } from '../onnx/graph';
import { OnnxModel } from '../onnx/model';
import { dataTypeName, toNumber } from '../onnx/types';
import type { NodeProto } from '../onnx/types';
import type { Component, ModuleTree, ParamInfo } from './types';

const PARAM_SUFFIX = /\.(weight|bias|gamma|beta|kernel|scale)$/;

/** Module path of a scoped node name, or undefined when the name carries no scope. */
export function scopePath(nodeName: string): string | undefined {
  if (!nodeName.includes('/')) return undefined;
  const parts = nodeName.split('/').filter((p) => p.length > 0);
  parts.pop(); // the op's own name (`Gemm`, `MatMul_1`)
  // TF/Keras spells list items `layer_._0`; make them `layer.0` like PyTorch.
  return parts.map((p) => p.replace(/_\._(\d+)$/, '.$1')).join('.');
}

/** Module path from a parameter name (`a.b.c.weight` -> `a.b.c`), or undefined. */
export function paramModulePath(initializer: string): string | undefined {
  if (!PARAM_SUFFIX.test(initializer) || !initializer.includes('.')) return undefined;
  return initializer.replace(PARAM_SUFFIX, '');
}

/** Every node's module path and the subtree queries discovery needs. */
export class ModuleIndex {
  /** Module path of each node ('' for the root). */
  readonly pathOf = new Map<NodeProto, string>();
  private readonly byPrefix = new Map<string, NodeProto[]>();
  /** True when most nodes carry scope names (a PyTorch/TF export, not an anonymous graph). */
  readonly scoped: boolean;

  constructor(readonly graph: OnnxGraph) {
    let scopedCount = 0;
    for (const n of graph.nodes) {
      let p = scopePath(graph.name(n));
      if (p !== undefined) scopedCount++;
      else p = this.pathFromParams(n) ?? '';
      this.pathOf.set(n, p);
      // Register the node under every ancestor prefix so subtree lookups are one map read.
      const parts = p ? p.split('.') : [];
      for (let i = 0; i <= parts.length; i++) {
        const key = parts.slice(0, i).join('.');
        let list = this.byPrefix.get(key);
        if (!list) this.byPrefix.set(key, (list = []));
        list.push(n);
      }
    }
    this.scoped = graph.nodes.length > 0 && scopedCount / graph.nodes.length > 0.5;
  }

  /** All module paths that have at least one node in their subtree. */
  paths(): string[] {
    return [...this.byPrefix.keys()];
  }

  has(path: string): boolean {
    return this.byPrefix.has(path);
  }

  /** Nodes of a module and all its submodules, in file order. */
  subtree(path: string): NodeProto[] {
    return this.byPrefix.get(path) ?? [];
  }

  /** Nodes of several modules together (deduplicated, file order). */
  union(paths: string[]): NodeProto[] {
    const set = new Set<NodeProto>();
    for (const p of paths) for (const n of this.subtree(p)) set.add(n);
    return this.graph.nodes.filter((n) => set.has(n));
  }

  /** Weights read by a set of nodes. */
  params(nodes: NodeProto[]): ParamInfo[] {
    const seen = new Set<string>();
    const out: ParamInfo[] = [];
    for (const n of nodes) {
      for (const i of n.input) {
        const t = i && this.graph.initializers.get(i);
        if (!t || seen.has(i)) continue;
        seen.add(i);
        const count = OnnxModel.elementCount(t);
        if (count <= 1) continue; // scalars and shape constants are not parameters
        out.push({ name: t.name, shape: t.dims.map(toNumber), dtype: dataTypeName(t.data_type) });
      }
    }
    return out;
  }

  /** A Component for one or more module paths. */
  component(paths: string | string[]): Component {
    const list = Array.isArray(paths) ? paths : [paths];
    const nodes = this.union(list);
    const params = this.params(nodes);
    return {
      path: list.join(' + '),
      nodes: nodes.map((n) => this.graph.name(n)),
      params,
      paramCount: params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0),
    };
  }

  /** Values produced inside the node set and read outside it (or graph outputs), file order. */
  outputs(nodes: NodeProto[]): string[] {
    const inside = new Set(nodes);
    const graphOut = new Set(this.graph.outputs.map((o) => o.name));
    const out: string[] = [];
    for (const n of nodes) {
      for (const o of n.output) {
        if (!o) continue;
        const readOutside = (this.graph.consumers.get(o) ?? []).some((c) => !inside.has(c));
        if (readOutside || graphOut.has(o)) out.push(o);
      }
    }
    return out;
  }

  /** Non-constant values read by the node set and produced outside it (or fed), first-use order. */
  inputs(nodes: NodeProto[]): string[] {
    const inside = new Set(nodes);
    const out: string[] = [];
    const seen = new Set<string>();
    for (const n of nodes) {
      for (const i of n.input) {
        if (!i || seen.has(i) || this.graph.isConstant(i)) continue;
        const p = this.graph.producer.get(i);
        if (p && inside.has(p)) continue;
        seen.add(i);
        out.push(i);
      }
    }
    return out;
  }

  /** The raw module tree (for the Layer Explorer of an unrecognised model). */
  tree(): ModuleTree {
    const root: ModuleTree = { name: '', path: '', nodeCount: 0, paramCount: 0, children: [] };
    const byPath = new Map<string, ModuleTree>([['', root]]);
    const ensure = (path: string): ModuleTree => {
      const hit = byPath.get(path);
      if (hit) return hit;
      const cut = path.lastIndexOf('.');
      const parentPath = cut < 0 ? '' : path.slice(0, cut);
      const parent = ensure(parentPath);
      const node: ModuleTree = { name: parentPath ? path.slice(parentPath.length + 1) : path, path, nodeCount: 0, paramCount: 0, children: [] };
      parent.children.push(node);
      byPath.set(path, node);
      return node;
    };
    for (const p of this.paths()) ensure(p);
    for (const [path, node] of byPath) {
      const nodes = this.subtree(path);
      node.nodeCount = nodes.length;
      node.paramCount = this.params(nodes).reduce((s, x) => s + x.shape.reduce((a, b) => a * b, 1), 0);
    }
    return root;
  }

  private pathFromParams(n: NodeProto): string | undefined {
    for (const i of n.input) {
      if (!i || !this.graph.initializers.has(i)) continue;
      const p = paramModulePath(i);
      if (p) return p;
    }
    return undefined;
  }
}
