/**
 * Reads an .onnx file without its large inline weights. The protobuf is walked with positional
 * reads: every field is copied except the `raw_data` of big graph initializers, which is skipped
 * (its place in the file recorded) and left out of the copy, and the lengths of the enclosing
 * TensorProto, GraphProto are rewritten. Decoding the copy gives the model without its weights,
 * at the cost of its graph: reading a 121 MB GPT-2 whole cost 0.4 s of CPU (page faults of a
 * fresh buffer) and its size in resident memory, which never went back to the system.
 */
import * as fs from 'node:fs';

/** Fields walked: ModelProto.graph, GraphProto.initializer, TensorProto.raw_data. */
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_RAW_DATA = 9;

/** The file is not a protobuf this walk understands (the caller decodes it the ordinary way). */
export class SkimError extends Error {}

export interface Skimmed {
  /** The ModelProto without the skipped weights. */
  bytes: Uint8Array;
  /** Where the i-th graph initializer's skipped raw_data is in the file. */
  skipped: Map<number, { offset: number; length: number }>;
  fileSize: number;
}

/** A window of the file, refilled on demand, so that small fields cost no syscall each. */
class FileReader {
  private buf = new Uint8Array(0);
  private at = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  bytes(pos: number, len: number): Uint8Array {
    if (pos < 0 || pos + len > this.size) throw new SkimError(`the file ends at byte ${this.size}, inside a field that runs to ${pos + len}`);
    if (pos < this.at || pos + len > this.at + this.buf.length) {
      // A small window: after a skipped weight the next header is read, not the next weight.
      const want = Math.min(this.size - pos, Math.max(len, 1 << 16));
      const b = new Uint8Array(want);
      let done = 0;
      while (done < want) {
        const n = fs.readSync(this.fd, b, done, want - done, pos + done);
        if (n <= 0) throw new SkimError(`read ended early at byte ${pos + done}`);
        done += n;
      }
      this.buf = b;
      this.at = pos;
    }
    return this.buf.subarray(pos - this.at, pos - this.at + len);
  }

  varint(pos: number): { value: number; next: number } {
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.bytes(pos + i, 1)[0];
      value += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return { value, next: pos + i + 1 };
    }
    throw new SkimError(`a varint at byte ${pos} is longer than 10 bytes`);
  }
}

function varintBytes(v: number): Uint8Array {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/** One protobuf field: [start, end) of the whole field in the file, its number and, for length-delimited fields, the payload. */
interface Field {
  start: number;
  end: number;
  field: number;
  payload?: { start: number; length: number };
}

function fields(r: FileReader, start: number, end: number, visit: (f: Field) => void): void {
  let pos = start;
  while (pos < end) {
    const tag = r.varint(pos);
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    let next: number;
    let payload: Field['payload'];
    if (wire === 0) next = r.varint(tag.next).next;
    else if (wire === 1) next = tag.next + 8;
    else if (wire === 5) next = tag.next + 4;
    else if (wire === 2) {
      const len = r.varint(tag.next);
      payload = { start: len.next, length: len.value };
      next = len.next + len.value;
    } else throw new SkimError(`unsupported wire type ${wire} at byte ${pos}`);
    if (field === 0 || next > end) throw new SkimError(`a field at byte ${pos} runs past its message (to ${next} of ${end})`);
    visit({ start: pos, end: next, field, payload });
    pos = next;
  }
}

/** Chunks of output bytes and their total length. */
class Out {
  parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  /** The field `field` (length-delimited) wrapping `inner`. */
  pushMessage(field: number, inner: Out): void {
    this.push(varintBytes(field * 8 + 2));
    this.push(varintBytes(inner.length));
    for (const p of inner.parts) this.push(p);
  }
  concat(): Uint8Array {
    const b = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      b.set(p, o);
      o += p.length;
    }
    return b;
  }
}

/** Skims `file`, leaving out the raw_data of graph initializers of at least `minBytes`. */
export function skimModel(file: string, minBytes: number): Skimmed {
  const fd = fs.openSync(file, 'r');
  try {
    const r = new FileReader(fd, fs.fstatSync(fd).size);
    const copy = (out: Out, f: Field): void => out.push(Uint8Array.from(r.bytes(f.start, f.end - f.start)));
    const skipped = new Map<number, { offset: number; length: number }>();
    let index = 0;
    const model = new Out();
    let graphs = 0;
    fields(r, 0, r.size, (f) => {
      if (f.field !== MODEL_GRAPH || !f.payload) return copy(model, f);
      if (++graphs > 1) throw new SkimError('more than one graph field');
      const graph = new Out();
      fields(r, f.payload.start, f.payload.start + f.payload.length, (g) => {
        if (g.field !== GRAPH_INITIALIZER || !g.payload) return copy(graph, g);
        const tensor = new Out();
        fields(r, g.payload.start, g.payload.start + g.payload.length, (t) => {
          if (t.field === TENSOR_RAW_DATA && t.payload && t.payload.length >= minBytes) skipped.set(index, { offset: t.payload.start, length: t.payload.length });
          else {
            // A later occurrence of raw_data replaces an earlier one (protobuf: the last wins).
            if (t.field === TENSOR_RAW_DATA) skipped.delete(index);
            copy(tensor, t);
          }
        });
        graph.pushMessage(GRAPH_INITIALIZER, tensor);
        index++;
      });
      model.pushMessage(MODEL_GRAPH, graph);
    });
    return { bytes: model.concat(), skipped, fileSize: r.size };
  } finally {
    fs.closeSync(fd);
  }
}
