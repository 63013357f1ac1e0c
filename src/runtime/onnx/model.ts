/**
 * Reading and writing ONNX checkpoints: ModelProto with zero-copy weights, external data
 * resolved (and confined) to the model's folder, atomic writes of new files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnxType } from './proto';
import { SkimError, skimModel } from './skim';
import type { Skimmed } from './skim';
import { bfloatToFloat, halfToFloat } from './float16';
import { DataType, bytesPerElement, dataTypeName, toNumber } from './types';
import type { GraphProto, ModelProto, TensorProto } from './types';
import type { HostTensor } from '../tensor';

/** A problem with a model file, worded for the user (one line). */
export class ModelError extends Error {
  override readonly name = 'ModelError';
}

/** Where a tensor's bytes live in an external data file. */
export interface ExternalRef {
  /** The location as written in the model (relative to the model's folder). */
  location: string;
  /** Absolute path of the data file. */
  file: string;
  offset: number;
  length: number;
}

/** Tensor values as a JS typed array (fp16/bf16 widened to float32). */
export type TensorValues = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | BigUint64Array;

const EXTERNAL = 1;

/** Inline weights at least this large are not kept in memory: they are read from the file when needed. */
const LAZY_MIN_BYTES = 4096;

/** Files at least this large are skimmed rather than read whole (small ones: a read is cheaper than the walk). */
export const SKIM_MIN_FILE_BYTES = 16 * 2 ** 20;

/**
 * An ONNX model read from disk (or bytes), with its folder for external data.
 *
 * Memory: decoding is zero-copy (weights are views into the file's buffer); then the large
 * inline weights are detached (their offsets in the file recorded, the views dropped) and
 * everything else small is copied out, so the file's buffer is freed. Sessions read the
 * weights from the file themselves; the few methods that need a weight on the host read it
 * on demand. So a model open in the engine costs its graph, not its weights.
 */
export class OnnxModel {
  private readonly externals = new Map<TensorProto, ExternalRef>();
  /** Large inline weights, detached: where their bytes are in the .onnx file. */
  private readonly inline = new Map<TensorProto, { offset: number; length: number }>();

  private constructor(
    readonly proto: ModelProto,
    /** Absolute path of the .onnx file ('' for a model built in memory). */
    readonly path: string,
    /** Folder that external data locations are relative to. */
    readonly dir: string,
    /** Size of the .onnx file itself, bytes. */
    readonly fileSize: number,
    /** The file's bytes, which inline weights are views into until detached. */
    bytes?: Uint8Array,
  ) {
    this.resolveExternalData();
    if (bytes && path) this.detach(bytes);
  }

  /** Reads and validates `file`; throws ModelError with a one-line reason. */
  static load(file: string): OnnxModel {
    const abs = path.resolve(file);
    let bytes: Buffer;
    try {
      const st = fs.statSync(abs);
      if (st.isDirectory()) throw new ModelError(`${abs} is a folder, not an .onnx file`);
      if (st.size >= SKIM_MIN_FILE_BYTES) {
        const skimmed = OnnxModel.skimmed(abs);
        if (skimmed) return skimmed;
      }
      bytes = fs.readFileSync(abs);
    } catch (e) {
      if (e instanceof ModelError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new ModelError(`${abs}: no such file`);
      if (code === 'EACCES') throw new ModelError(`${abs}: permission denied`);
      throw new ModelError(`${abs}: cannot read (${(e as Error).message})`);
    }
    return OnnxModel.fromBytes(bytes, abs);
  }

  /**
   * A large file read without its large inline weights (skim.ts); undefined when the walk does
   * not understand the file, which is then read whole (and its errors reported from there).
   */
  private static skimmed(abs: string): OnnxModel | undefined {
    let s: Skimmed;
    try {
      s = skimModel(abs, LAZY_MIN_BYTES);
    } catch (e) {
      if (e instanceof SkimError) return undefined;
      throw e;
    }
    // The copy holds only the graph: its small tensors may stay views into it (no detach).
    const m = OnnxModel.fromBytes(s.bytes, abs, s.fileSize, false);
    m.graph.initializer.forEach((t, i) => {
      const at = s.skipped.get(i);
      if (!at) return;
      // (Raw data beside external data is ignored, as onnxruntime does.)
      if (t.data_location !== EXTERNAL) m.inline.set(t, at);
      t.raw_data = undefined; // (decoding gave an empty default)
    });
    return m;
  }

  /** Decodes model bytes; `file` names the source in errors and anchors external data. */
  static fromBytes(bytes: Uint8Array, file: string, fileSize = bytes.length, detach = true): OnnxModel {
    const label = file || 'model';
    if (bytes.length === 0) throw new ModelError(`${label} is empty (0 bytes): not an ONNX model`);
    let proto: ModelProto;
    try {
      proto = onnxType('ModelProto').decode(bytes) as unknown as ModelProto;
    } catch (e) {
      const msg = (e as Error).message;
      const truncated = /index out of range/.test(msg);
      throw new ModelError(
        truncated
          ? `${label} is truncated or corrupt: the protobuf data ends early (${msg}); re-export or re-download the model`
          : `${label} is not a valid ONNX model: the protobuf data is corrupt (${msg})`,
      );
    }
    const ir = toNumber(proto.ir_version);
    if (!proto.graph || ir <= 0 || proto.opset_import.length === 0) {
      const missing = [!proto.graph && 'graph', ir <= 0 && 'ir_version', proto.opset_import.length === 0 && 'opset_import']
        .filter(Boolean)
        .join(', ');
      throw new ModelError(`${label} is not an ONNX model (no ${missing} in the file)`);
    }
    if (proto.graph.node.length === 0) throw new ModelError(`${label} has an empty graph (no nodes)`);
    const abs = file ? path.resolve(file) : '';
    return new OnnxModel(proto, abs, abs ? path.dirname(abs) : process.cwd(), fileSize, abs && detach ? bytes : undefined);
  }

  /** Wraps a proto built in memory; external data resolves against `dir`. */
  static fromProto(proto: ModelProto, dir: string): OnnxModel {
    return new OnnxModel(proto, '', dir, 0);
  }

  get graph(): GraphProto {
    return this.proto.graph!;
  }

  /** The opset version of the default ONNX domain. */
  get opset(): number {
    const op = this.proto.opset_import.find((o) => !o.domain || o.domain === 'ai.onnx');
    return op ? toNumber(op.version) : 0;
  }

  /** True when some initializer lives in an external data file. */
  get hasExternalData(): boolean {
    return this.externals.size > 0;
  }

  /** The external data files this model reads (absolute paths, unique). */
  externalFiles(): string[] {
    return [...new Set([...this.externals.values()].map((r) => r.file))];
  }

  /** Where a tensor's data lives, if outside the .onnx file. */
  externalRef(t: TensorProto): ExternalRef | undefined {
    return this.externals.get(t);
  }

  /**
   * Where an inline tensor's raw bytes sit inside the .onnx file, so a rewritten graph can read
   * them from the original file as external data instead of copying them.
   */
  inlineOffset(t: TensorProto): { offset: number; length: number } | undefined {
    return this.inline.get(t);
  }

  /** Number of elements of a tensor. */
  static elementCount(t: TensorProto): number {
    return t.dims.reduce<number>((n, d) => n * toNumber(d), 1);
  }

  /** Raw little-endian bytes of a tensor (in memory, or read from the model or external data file). */
  tensorBytes(t: TensorProto): Uint8Array {
    const ext = this.externals.get(t);
    if (ext) return readRange(ext.file, ext.offset, ext.length, `external data file ${ext.location} ends before tensor ${t.name}'s data`);
    const at = this.inline.get(t);
    if (at) return readRange(this.path, at.offset, at.length, `${this.path} changed on disk since it was opened (tensor ${t.name})`);
    if (t.raw_data && t.raw_data.length > 0) return t.raw_data;
    return typedFieldBytes(t);
  }

  /** Tensor values as a typed array: float16/bfloat16 widen to Float32Array. */
  tensorValues(t: TensorProto): TensorValues {
    const bytes = this.tensorBytes(t);
    const n = OnnxModel.elementCount(t);
    const dt = t.data_type;
    const view = <T>(C: { new (b: ArrayBufferLike, o: number, l: number): T; BYTES_PER_ELEMENT: number }): T => {
      const aligned = bytes.byteOffset % C.BYTES_PER_ELEMENT === 0 ? bytes : Uint8Array.from(bytes);
      return new C(aligned.buffer, aligned.byteOffset, n);
    };
    switch (dt) {
      case DataType.FLOAT:
        return view(Float32Array);
      case DataType.DOUBLE:
        return view(Float64Array);
      case DataType.INT32:
        return view(Int32Array);
      case DataType.INT64:
        return view(BigInt64Array);
      case DataType.UINT64:
        return view(BigUint64Array);
      case DataType.UINT32:
        return view(Uint32Array);
      case DataType.INT16:
        return view(Int16Array);
      case DataType.UINT16:
        return view(Uint16Array);
      case DataType.INT8:
        return view(Int8Array);
      case DataType.UINT8:
      case DataType.BOOL:
        return view(Uint8Array);
      case DataType.FLOAT16:
      case DataType.BFLOAT16: {
        const bits = view(Uint16Array);
        const out = new Float32Array(n);
        const conv = dt === DataType.FLOAT16 ? halfToFloat : bfloatToFloat;
        for (let i = 0; i < n; i++) out[i] = conv(bits[i]);
        return out;
      }
      default:
        throw new ModelError(`tensor ${t.name}: data type ${dataTypeName(dt)} is not supported here`);
    }
  }

  /** A tensor as a host tensor in onnxruntime's element types (float16 kept as bits). */
  tensorHost(t: TensorProto): HostTensor {
    const dims = t.dims.map(toNumber);
    const dt = t.data_type;
    if (dt === DataType.FLOAT16) {
      const b = this.tensorBytes(t);
      return { type: 'float16', data: new Uint16Array(Uint8Array.from(b).buffer), dims };
    }
    const types: Partial<Record<number, HostTensor['type']>> = {
      [DataType.FLOAT]: 'float32',
      [DataType.DOUBLE]: 'float64',
      [DataType.INT64]: 'int64',
      [DataType.INT32]: 'int32',
      [DataType.BOOL]: 'bool',
      [DataType.UINT8]: 'uint8',
      [DataType.INT8]: 'int8',
    };
    const type = types[dt];
    if (!type) throw new ModelError(`tensor ${t.name}: data type ${dataTypeName(dt)} cannot be fed to onnxruntime here`);
    return { type, data: this.tensorValues(t) as HostTensor['data'], dims };
  }

  /** Tensor values widened to float32 (for arithmetic on weights of any float type). */
  tensorFloat32(t: TensorProto): Float32Array {
    const v = this.tensorValues(t);
    if (v instanceof Float32Array) return v;
    if (v instanceof BigInt64Array || v instanceof BigUint64Array) return Float32Array.from(v, Number);
    return Float32Array.from(v as ArrayLike<number>);
  }

  /** Serialises the ModelProto (external data references are kept as they are; detached weights are read back). */
  encode(): Uint8Array {
    return this.withInlineWeights(() => onnxType('ModelProto').encode(this.proto as never).finish());
  }

  /**
   * Runs `fn` with the detached inline weights back in place (views into a fresh read of the
   * file), for code that serialises this proto or a copy sharing its tensors.
   */
  withInlineWeights<T>(fn: () => T): T {
    if (this.inline.size === 0) return fn();
    const file = fs.readFileSync(this.path);
    if (file.length !== this.fileSize) throw new ModelError(`${this.path} changed on disk since it was opened; open it again`);
    try {
      for (const [t, at] of this.inline) t.raw_data = file.subarray(at.offset, at.offset + at.length);
      return fn();
    } finally {
      for (const t of this.inline.keys()) t.raw_data = undefined;
    }
  }

  /**
   * Writes the model to `file` atomically (temp file + rename); refuses to overwrite the
   * file it was read from, so an original checkpoint is never modified.
   */
  save(file: string): void {
    const abs = path.resolve(file);
    if (this.path && abs === this.path) throw new ModelError(`refusing to overwrite the original model ${abs}; choose a new file name`);
    writeFileAtomic(abs, this.encode());
  }

  /**
   * Lets go of the file's buffer: large inline weights become offsets into the file, every other
   * byte field that is a view into the buffer is copied (a view would keep the whole buffer alive).
   */
  private detach(bytes: Uint8Array): void {
    const buffer = bytes.buffer;
    for (const t of this.graph.initializer) {
      const raw = t.raw_data;
      if (raw && raw.buffer === buffer && raw.length >= LAZY_MIN_BYTES) {
        // A tensor marked external reads its external data (onnxruntime ignores raw_data beside it).
        if (t.data_location !== EXTERNAL) this.inline.set(t, { offset: raw.byteOffset - bytes.byteOffset, length: raw.length });
        t.raw_data = undefined;
      }
    }
    const seen = new Set<object>();
    const visit = (o: unknown): void => {
      if (!o || typeof o !== 'object' || seen.has(o)) return;
      seen.add(o);
      if (Array.isArray(o)) {
        o.forEach((x, i) => {
          if (x instanceof Uint8Array) {
            if (x.buffer === buffer) o[i] = Uint8Array.from(x);
          } else visit(x);
        });
        return;
      }
      for (const [k, v] of Object.entries(o)) {
        if (v instanceof Uint8Array) {
          if (v.buffer === buffer) (o as Record<string, unknown>)[k] = Uint8Array.from(v);
        } else if (typeof v === 'object') visit(v);
      }
    };
    visit(this.proto);
  }

  private resolveExternalData(): void {
    const visit = (g: GraphProto): void => {
      for (const t of g.initializer) this.resolveTensor(t);
      for (const n of g.node) {
        for (const a of n.attribute) {
          if (a.t) this.resolveTensor(a.t);
          if (a.g) visit(a.g);
          for (const sub of a.graphs) visit(sub);
        }
      }
    };
    visit(this.graph);
  }

  private resolveTensor(t: TensorProto): void {
    if (t.data_location !== EXTERNAL) return;
    const kv = new Map(t.external_data.map((e) => [e.key, e.value]));
    const location = kv.get('location');
    if (!location) throw new ModelError(`tensor ${t.name} is marked external but has no location`);
    const file = confinedPath(this.dir, location, t.name);
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      throw new ModelError(`external data file ${location} (for tensor ${t.name}) is missing next to the model in ${this.dir}`);
    }
    const offset = Number(kv.get('offset') ?? 0);
    const expected = OnnxModel.elementCount(t) * bytesPerElement(t.data_type);
    const length = kv.has('length') ? Number(kv.get('length')) : expected || size - offset;
    if (!Number.isFinite(offset) || !Number.isFinite(length) || offset < 0 || length < 0) {
      throw new ModelError(`tensor ${t.name}: invalid external data offset/length`);
    }
    if (offset + length > size) {
      throw new ModelError(`external data file ${location} is truncated: tensor ${t.name} needs bytes ${offset}..${offset + length} but the file has ${size}`);
    }
    this.externals.set(t, { location, file, offset, length });
  }
}

/** Resolves an external data location inside `dir`, refusing absolute paths and escapes. */
export function confinedPath(dir: string, location: string, tensor: string): string {
  if (path.isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location) || location.startsWith('\\\\')) {
    throw new ModelError(`tensor ${tensor}: external data location "${location}" is an absolute path; ONNX external data must be relative to the model's folder`);
  }
  const root = path.resolve(dir);
  const resolved = path.resolve(root, location);
  const rel = path.relative(root, resolved);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new ModelError(`tensor ${tensor}: external data location "${location}" escapes the model's folder ${root}; refused`);
  }
  return resolved;
}

/** Reads `length` bytes at `offset` of a file. */
function readRange(file: string, offset: number, length: number, shortMessage: string): Uint8Array {
  const out = Buffer.allocUnsafe(length);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, out, done, length - done, offset + done);
      if (n === 0) throw new ModelError(shortMessage);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Writes bytes to a temp file beside `file`, then renames it into place. */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new ModelError(`cannot write ${file}: ${(e as Error).message}`);
  }
}

function typedFieldBytes(t: TensorProto): Uint8Array {
  const n = OnnxModel.elementCount(t);
  switch (t.data_type) {
    case DataType.FLOAT:
      return new Uint8Array(Float32Array.from(t.float_data).buffer);
    case DataType.DOUBLE:
      return new Uint8Array(Float64Array.from(t.double_data).buffer);
    case DataType.INT64:
      return new Uint8Array(BigInt64Array.from(t.int64_data, (v) => BigInt(typeof v === 'number' ? v : v.toString())).buffer);
    case DataType.UINT64:
      return new Uint8Array(BigUint64Array.from(t.uint64_data, (v) => BigInt(typeof v === 'number' ? v : v.toString())).buffer);
    case DataType.INT32:
      return new Uint8Array(Int32Array.from(t.int32_data).buffer);
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array.from(t.int32_data);
    case DataType.INT8:
      return new Uint8Array(Int8Array.from(t.int32_data).buffer);
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return new Uint8Array(Uint16Array.from(t.int32_data).buffer);
    case DataType.INT16:
      return new Uint8Array(Int16Array.from(t.int32_data).buffer);
    default:
      if (n === 0) return new Uint8Array(0);
      throw new ModelError(`tensor ${t.name}: data type ${dataTypeName(t.data_type)} is not supported here`);
  }
}
