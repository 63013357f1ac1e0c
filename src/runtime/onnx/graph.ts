/**
 * A name-keyed index over an ONNX graph: values, nodes, producers, consumers, initializers,
 * constants, topological order and the shapes the file records.
 */
import type { OnnxModel, TensorValues } from './model';
import { toNumber } from './types';
import type { GraphProto, NodeProto, TensorProto, ValueInfoProto } from './types';

/** A dimension: a number, a symbolic name, or unknown (undefined). */
export type Dim = number | string | undefined;

/** Type and shape of a value as far as the file says. */
export interface ValueType {
  elemType: number;
  shape?: Dim[];
}

/** The index; build once per model with `OnnxGraph.build(model)`. */
export class OnnxGraph {
  readonly nodes: NodeProto[];
  readonly nodeByName = new Map<string, NodeProto>();
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly initializers = new Map<string, TensorProto>();
  readonly types = new Map<string, ValueType>();
  /** Graph inputs that are not initializers (what a user feeds). */
  readonly inputs: ValueInfoProto[];
  readonly outputs: ValueInfoProto[];
  private order?: NodeProto[];
  private readonly nodeIndex = new Map<NodeProto, number>();

  private constructor(
    readonly model: OnnxModel,
    readonly proto: GraphProto,
  ) {
    this.nodes = proto.node;
    proto.node.forEach((n, i) => {
      this.nodeIndex.set(n, i);
      const name = nodeName(n, i);
      this.nodeByName.set(name, n);
      for (const o of n.output) if (o) this.producer.set(o, n);
      for (const inp of n.input) {
        if (!inp) continue;
        let list = this.consumers.get(inp);
        if (!list) this.consumers.set(inp, (list = []));
        list.push(n);
      }
    });
    for (const t of proto.initializer) {
      this.initializers.set(t.name, t);
      this.types.set(t.name, { elemType: t.data_type, shape: t.dims.map(toNumber) });
    }
    for (const v of [...proto.value_info, ...proto.input, ...proto.output]) this.recordType(v);
    this.inputs = proto.input.filter((v) => !this.initializers.has(v.name));
    this.outputs = proto.output;
  }

  static build(model: OnnxModel): OnnxGraph {
    return new OnnxGraph(model, model.graph);
  }

  /** A node's name, or a stable synthetic one (`<op>_<index>`) when the file has none. */
  name(n: NodeProto): string {
    return nodeName(n, this.nodeIndex.get(n) ?? -1);
  }

  /** Position of a node in the file's node list. */
  index(n: NodeProto): number {
    return this.nodeIndex.get(n) ?? -1;
  }

  /** Nodes in a topological order (the file's order when it already is one). */
  topological(): NodeProto[] {
    if (this.order) return this.order;
    const available = new Set<string>([...this.initializers.keys(), ...this.proto.input.map((i) => i.name), '']);
    const pending = new Map<NodeProto, number>();
    const ready: NodeProto[] = [];
    for (const n of this.nodes) {
      const missing = new Set(n.input.filter((i) => i && !available.has(i) && this.producer.has(i)));
      pending.set(n, missing.size);
      if (missing.size === 0) ready.push(n);
    }
    const out: NodeProto[] = [];
    const seen = new Set<NodeProto>();
    while (ready.length) {
      const n = ready.shift()!;
      if (seen.has(n)) continue;
      seen.add(n);
      out.push(n);
      for (const o of n.output) {
        for (const c of this.consumers.get(o) ?? []) {
          const left = (pending.get(c) ?? 0) - countOf(c.input, o);
          pending.set(c, left);
          if (left <= 0 && !seen.has(c)) ready.push(c);
        }
      }
    }
    // Nodes in a cycle (invalid graphs) keep their file order at the end.
    for (const n of this.nodes) if (!seen.has(n)) out.push(n);
    this.order = out;
    return out;
  }

  /** Data inputs of a node that are produced by other nodes or fed (not weights/constants). */
  activationInputs(n: NodeProto): string[] {
    return n.input.filter((i) => i && !this.isConstant(i));
  }

  /** True when a value is an initializer or the output of a Constant node (chain). */
  isConstant(value: string): boolean {
    if (this.initializers.has(value)) return true;
    const p = this.producer.get(value);
    return !!p && p.op_type === 'Constant';
  }

  /** The initializer behind a value, following Identity/Cast of initializers. */
  initializerOf(value: string): TensorProto | undefined {
    let v = value;
    for (let i = 0; i < 4; i++) {
      const t = this.initializers.get(v);
      if (t) return t;
      const p = this.producer.get(v);
      if (!p || !['Identity', 'Cast'].includes(p.op_type)) return undefined;
      v = p.input[0];
    }
    return undefined;
  }

  /**
   * The value of a small constant (initializer, Constant node, or a Concat/Unsqueeze of
   * them) as numbers; undefined where some part is only known at run time, with those
   * entries reported as NaN when `partial` is set.
   */
  constantValues(value: string, partial = false, depth = 0): number[] | undefined {
    if (depth > 8) return undefined;
    const t = this.initializers.get(value);
    if (t) return numbers(this.model.tensorValues(t));
    const p = this.producer.get(value);
    if (!p) return undefined;
    switch (p.op_type) {
      case 'Constant': {
        const a = p.attribute.find((x) => x.name === 'value' || x.name === 'value_ints' || x.name === 'value_int' || x.name === 'value_float' || x.name === 'value_floats');
        if (!a) return undefined;
        if (a.t) return numbers(this.model.tensorValues(a.t));
        if (a.ints.length) return a.ints.map(toNumber);
        if (a.floats.length) return [...a.floats];
        if (a.i !== undefined && a.i !== null) return [toNumber(a.i)];
        if (a.f !== undefined) return [a.f];
        return undefined;
      }
      case 'Identity':
      case 'Cast':
      case 'Unsqueeze':
      case 'Squeeze':
      case 'Reshape':
        return this.constantValues(p.input[0], partial, depth + 1);
      case 'Concat': {
        const parts: number[] = [];
        for (const i of p.input) {
          const v = this.constantValues(i, partial, depth + 1);
          if (v) parts.push(...v);
          else if (partial) parts.push(NaN);
          else return undefined;
        }
        return parts;
      }
      default:
        return partial ? [NaN] : undefined;
    }
  }

  /** Integer attribute of a node (or the default). */
  attrInt(n: NodeProto, name: string, dflt?: number): number | undefined {
    const a = n.attribute.find((x) => x.name === name);
    return a && a.i !== undefined && a.i !== null ? toNumber(a.i) : dflt;
  }

  /** Shape of a value as recorded in the file (value_info, inputs, outputs, initializers). */
  shape(value: string): Dim[] | undefined {
    return this.types.get(value)?.shape;
  }

  private recordType(v: ValueInfoProto): void {
    const tt = v.type?.tensor_type;
    if (!tt) return;
    const shape = tt.shape?.dim.map((d) => (d.dim_value !== undefined && d.dim_value !== null && toNumber(d.dim_value) > 0 ? toNumber(d.dim_value) : d.dim_param || undefined));
    this.types.set(v.name, { elemType: tt.elem_type ?? 0, shape });
  }
}

function nodeName(n: NodeProto, i: number): string {
  return n.name || `${n.op_type}_${i}`;
}

function countOf(list: string[], v: string): number {
  let c = 0;
  for (const x of list) if (x === v) c++;
  return c;
}

function numbers(v: TensorValues): number[] {
  return Array.from(v as ArrayLike<number | bigint>, Number);
}
