/**
 * Writes large benchmark models without torch: a LLaMA-7B-shaped fp16 export and a GPT-2-shaped
 * fp32 export of about 1 GB, both with Hugging Face / torch.onnx scope names, runnable ops
 * (opset 17) and random weights in one external data file (`model.onnx.data`). Every weight byte
 * is written (random, not a sparse file), so a benchmark that claimed not to read the weights
 * would be caught by the page cache and the read counters, not helped by holes.
 *
 * Usage (bundled by bench/large.mjs): `node large_models.js <llama7b|gpt2-1g|llama-tiny|gpt2-tiny> <dir>`.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnxType } from '../../src/runtime/onnx/proto';

export interface LlamaConfig {
  kind: 'llama';
  vocab: number;
  d: number;
  layers: number;
  heads: number;
  ffn: number;
  maxPos: number;
}

export interface Gpt2Config {
  kind: 'gpt2';
  vocab: number;
  d: number;
  layers: number;
  heads: number;
  nPos: number;
}

export const CONFIGS: Record<string, LlamaConfig | Gpt2Config> = {
  // LLaMA-7B: 32 layers, d 4096, 32 heads, SwiGLU 11008, vocabulary 32000: 6.74 B parameters, 13.5 GB fp16.
  llama7b: { kind: 'llama', vocab: 32000, d: 4096, layers: 32, heads: 32, ffn: 11008, maxPos: 2048 },
  // GPT-2 layout at d 1536 (12 heads of 128), 9 layers, vocabulary 8192: 280 M parameters, 1.12 GB fp32.
  'gpt2-1g': { kind: 'gpt2', vocab: 8192, d: 1536, layers: 9, heads: 12, nPos: 1024 },
  // Over protobuf's 2 GB: d 2048 (16 heads of 128), 12 layers: 621 M parameters, 2.49 GB fp32.
  'gpt2-2g': { kind: 'gpt2', vocab: 8192, d: 2048, layers: 12, heads: 16, nPos: 1024 },
  // The same generators at toy size, to check that their graphs run and are discovered right.
  'llama-tiny': { kind: 'llama', vocab: 64, d: 32, layers: 2, heads: 4, ffn: 48, maxPos: 64 },
  'gpt2-tiny': { kind: 'gpt2', vocab: 64, d: 32, layers: 2, heads: 4, nPos: 64 },
};

const FLOAT = 1;
const INT64 = 7;
const FLOAT16 = 10;

type Attr = Record<string, unknown>;
interface Node {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute?: Attr[];
}

/** Builds the graph and streams the weights into the data file as they are declared. */
class Builder {
  readonly nodes: Node[] = [];
  readonly inits: Record<string, unknown>[] = [];
  private offset = 0;
  private readonly fd: number;
  private readonly chunk = Buffer.allocUnsafe(64 << 20);
  private seed = 1;

  constructor(
    private readonly dataFile: string,
    private readonly dtype: number,
  ) {
    this.fd = fs.openSync(dataFile, 'w');
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** A random weight of `dims` in the external data file (fp16: |x| in [2^-7, 2^-6); fp32: N(0, std)). */
  weight(name: string, dims: number[], std = 0.02): string {
    const bytesPer = this.dtype === FLOAT16 ? 2 : 4;
    const total = dims.reduce((a, b) => a * b, 1) * bytesPer;
    let left = total;
    while (left > 0) {
      const n = Math.min(left, this.chunk.length);
      const buf = this.chunk.subarray(0, n);
      if (this.dtype === FLOAT16) {
        crypto.randomFillSync(buf);
        // Keep the sign and mantissa random, fix the exponent: finite values of magnitude ~0.01.
        const w = new Uint32Array(buf.buffer, buf.byteOffset, n >> 2);
        for (let i = 0; i < w.length; i++) w[i] = (w[i] & 0x83ff83ff) | 0x20002000;
      } else {
        const f = new Float32Array(buf.buffer, buf.byteOffset, n >> 2);
        this.gaussian(f, std);
      }
      fs.writeSync(this.fd, buf, 0, n);
      left -= n;
    }
    this.inits.push({
      name,
      dims,
      data_type: this.dtype,
      data_location: 1,
      external_data: [
        { key: 'location', value: path.basename(this.dataFile) },
        { key: 'offset', value: String(this.offset) },
        { key: 'length', value: String(total) },
      ],
    });
    this.offset += total;
    return name;
  }

  /** A norm's scale: ones (inline, small). */
  ones(name: string, n: number): string {
    return this.inline(name, [n], this.dtype, Array(n).fill(1));
  }

  inline(name: string, dims: number[], type: number, values: number[]): string {
    let raw: Buffer;
    if (type === INT64) raw = Buffer.from(BigInt64Array.from(values, (v) => BigInt(v)).buffer);
    else if (type === FLOAT16) raw = Buffer.from(Uint16Array.from(values, toHalf).buffer);
    else raw = Buffer.from(Float32Array.from(values).buffer);
    this.inits.push({ name, dims, data_type: type, raw_data: raw });
    return name;
  }

  node(name: string, op: string, input: string[], attrs: Attr[] = [], outputs = 1): string[] {
    const output = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({ name, op_type: op, input, output, attribute: attrs });
    return output;
  }

  /** One-output node. */
  op(name: string, op: string, input: string[], attrs: Attr[] = []): string {
    return this.node(name, op, input, attrs)[0];
  }

  /** Box-Muller from a small xorshift generator (seeded: the same file every time). */
  private gaussian(f: Float32Array, std: number): void {
    let s = this.seed;
    const next = (): number => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return ((s >>> 0) + 0.5) / 4294967296;
    };
    for (let i = 0; i < f.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(next())) * std;
      const t = 2 * Math.PI * next();
      f[i] = r * Math.cos(t);
      if (i + 1 < f.length) f[i + 1] = r * Math.sin(t);
    }
    this.seed = s;
  }
}

function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = (x >>> 13) & 0x3ff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7bff;
  return sign | (exp << 10) | mant;
}

const ints = (name: string, values: number[]): Attr => ({ name, type: 7, ints: values });
const int = (name: string, value: number): Attr => ({ name, type: 2, i: value });
const float = (name: string, value: number): Attr => ({ name, type: 1, f: value });

/** Writes `<dir>/model.onnx` + `<dir>/model.onnx.data`; returns their sizes. */
export function writeModel(configName: string, dir: string): { model: string; dataBytes: number; params: number } {
  const cfg = CONFIGS[configName];
  if (!cfg) throw new Error(`unknown config ${configName} (${Object.keys(CONFIGS).join(', ')})`);
  fs.mkdirSync(dir, { recursive: true });
  const model = path.join(dir, 'model.onnx');
  const dataFile = `${model}.data`;
  const dtype = cfg.kind === 'llama' ? FLOAT16 : FLOAT;
  const b = new Builder(dataFile, dtype);
  try {
    const { logits, outType } = cfg.kind === 'llama' ? llama(b, cfg) : gpt2(b, cfg);
    const tensorType = (elem: number, dims: (number | string)[]) => ({ tensor_type: { elem_type: elem, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } });
    const proto = {
      ir_version: 8,
      opset_import: [{ domain: '', version: 17 }],
      producer_name: 'mechanist-bench',
      graph: {
        name: configName,
        node: b.nodes,
        initializer: b.inits,
        input: [{ name: 'input_ids', type: tensorType(INT64, ['batch_size', 'sequence_length']) }],
        output: [{ name: logits, type: tensorType(outType, ['batch_size', 'sequence_length', cfg.vocab]) }],
      },
    };
    const T = onnxType('ModelProto');
    fs.writeFileSync(model, T.encode(T.fromObject(proto)).finish());
  } finally {
    b.close();
  }
  const params = b.inits.reduce((s, t) => s + (t.dims as number[]).reduce((a, x) => a * x, 1), 0);
  return { model, dataBytes: fs.statSync(dataFile).size, params };
}

/** positions 0..S-1 as [S] int64, from the ids' shape. */
function positions(b: Builder, scope: string): string {
  const shape = b.op(`${scope}/Shape`, 'Shape', ['input_ids']);
  const s = b.op(`${scope}/Gather`, 'Gather', [shape, b.inline(`${scope}/one`, [], INT64, [1])], [int('axis', 0)]);
  return b.op(`${scope}/Range`, 'Range', [b.inline(`${scope}/zero`, [], INT64, [0]), s, b.inline(`${scope}/step`, [], INT64, [1])]);
}

/** The additive causal mask [S, S]: 0 on and below the diagonal, a large negative above. */
function causalMask(b: Builder, pos: string, type: number): string {
  const s = b.op('/model/mask/Shape', 'Shape', [pos]);
  const ss = b.op('/model/mask/Concat', 'Concat', [s, s], [int('axis', 0)]);
  const value = type === FLOAT16 ? { name: 'value', type: 4, t: { dims: [1], data_type: FLOAT16, raw_data: Buffer.from(Uint16Array.from([0xfbff]).buffer) } } : { name: 'value', type: 4, t: { dims: [1], data_type: FLOAT, raw_data: Buffer.from(Float32Array.from([-1e9]).buffer) } };
  const full = b.op('/model/mask/ConstantOfShape', 'ConstantOfShape', [ss], [value]);
  return b.op('/model/mask/Trilu', 'Trilu', [full, b.inline('/model/mask/k', [], INT64, [1])], [int('upper', 1)]);
}

function llama(b: Builder, c: LlamaConfig): { logits: string; outType: number } {
  const dh = c.d / c.heads;
  const embed = b.weight('model.embed_tokens.weight', [c.vocab, c.d]);
  let x = b.op('/model/embed_tokens/Gather', 'Gather', [embed, 'input_ids']);
  const pos = positions(b, '/model/positions');
  const mask = causalMask(b, pos, FLOAT16);
  // Rotary tables (half-split layout, as HF's rotate_half), inline fp16.
  const inv = Array.from({ length: dh / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / dh));
  const table = (fn: (x: number) => number): number[] => Array.from({ length: c.maxPos * dh }, (_, k) => fn(Math.floor(k / dh) * inv[(k % dh) % (dh / 2)]));
  const cosT = b.inline('model.rotary_emb.cos_cached', [c.maxPos, dh], FLOAT16, table(Math.cos));
  const sinT = b.inline('model.rotary_emb.sin_cached', [c.maxPos, dh], FLOAT16, table(Math.sin));
  const cos = b.op('/model/rotary_emb/Gather', 'Gather', [cosT, pos]);
  const sin = b.op('/model/rotary_emb/Gather_1', 'Gather', [sinT, pos]);
  const headShape = b.inline('/model/constants/head_shape', [4], INT64, [0, 0, c.heads, dh]);
  const mergeShape = b.inline('/model/constants/merge_shape', [3], INT64, [0, 0, c.d]);
  const scale = b.inline('/model/constants/sqrt_head_dim', [], FLOAT16, [Math.sqrt(dh)]);
  const rms = (scope: string, v: string, w: string): string => {
    const f = b.op(`${scope}/Cast`, 'Cast', [v], [int('to', FLOAT)]);
    const sq = b.op(`${scope}/Pow`, 'Pow', [f, b.inline(`${scope}/two`, [], FLOAT, [2])]);
    const mean = b.op(`${scope}/ReduceMean`, 'ReduceMean', [sq], [ints('axes', [-1]), int('keepdims', 1)]);
    const eps = b.op(`${scope}/Add`, 'Add', [mean, b.inline(`${scope}/eps`, [], FLOAT, [1e-6])]);
    const r = b.op(`${scope}/Sqrt`, 'Sqrt', [eps]);
    const n = b.op(`${scope}/Div`, 'Div', [f, r]);
    const h = b.op(`${scope}/Cast_1`, 'Cast', [n], [int('to', FLOAT16)]);
    return b.op(`${scope}/Mul`, 'Mul', [w, h]);
  };
  const rotate = (scope: string, t: string): string => {
    const half = dh / 2;
    const x1 = b.op(`${scope}/Slice`, 'Slice', [t, b.inline(`${scope}/s0`, [1], INT64, [0]), b.inline(`${scope}/e0`, [1], INT64, [half]), b.inline(`${scope}/ax`, [1], INT64, [-1])]);
    const x2 = b.op(`${scope}/Slice_1`, 'Slice', [t, b.inline(`${scope}/s1`, [1], INT64, [half]), b.inline(`${scope}/e1`, [1], INT64, [dh]), b.inline(`${scope}/ax1`, [1], INT64, [-1])]);
    const neg = b.op(`${scope}/Neg`, 'Neg', [x2]);
    const rot = b.op(`${scope}/Concat`, 'Concat', [neg, x1], [int('axis', -1)]);
    const a = b.op(`${scope}/Mul`, 'Mul', [t, cos]);
    const r = b.op(`${scope}/Mul_1`, 'Mul', [rot, sin]);
    return b.op(`${scope}/Add`, 'Add', [a, r]);
  };
  for (let l = 0; l < c.layers; l++) {
    const p = `/model/layers.${l}`;
    const w = (n: string, dims: number[]): string => b.weight(`model.layers.${l}.${n}.weight`, dims);
    const h = rms(`${p}/input_layernorm`, x, b.ones(`model.layers.${l}.input_layernorm.weight`, c.d));
    const proj = (n: string): string => {
      const m = b.op(`${p}/self_attn/${n}/MatMul`, 'MatMul', [h, w(`self_attn.${n}`, [c.d, c.d])]);
      const r = b.op(`${p}/self_attn/Reshape_${n}`, 'Reshape', [m, headShape]);
      return b.op(`${p}/self_attn/Transpose_${n}`, 'Transpose', [r], [ints('perm', [0, 2, 1, 3])]);
    };
    const q = rotate(`${p}/self_attn/rotary_q`, proj('q_proj'));
    const k = rotate(`${p}/self_attn/rotary_k`, proj('k_proj'));
    const v = proj('v_proj');
    const kt = b.op(`${p}/self_attn/Transpose_kt`, 'Transpose', [k], [ints('perm', [0, 1, 3, 2])]);
    const s0 = b.op(`${p}/self_attn/MatMul`, 'MatMul', [q, kt]);
    const s1 = b.op(`${p}/self_attn/Div`, 'Div', [s0, scale]);
    const s2 = b.op(`${p}/self_attn/Add`, 'Add', [s1, mask]);
    const pat = b.op(`${p}/self_attn/Softmax`, 'Softmax', [s2], [int('axis', -1)]);
    const z = b.op(`${p}/self_attn/MatMul_1`, 'MatMul', [pat, v]);
    const zt = b.op(`${p}/self_attn/Transpose`, 'Transpose', [z], [ints('perm', [0, 2, 1, 3])]);
    const zm = b.op(`${p}/self_attn/Reshape`, 'Reshape', [zt, mergeShape]);
    const o = b.op(`${p}/self_attn/o_proj/MatMul`, 'MatMul', [zm, w('self_attn.o_proj', [c.d, c.d])]);
    const mid = b.op(`${p}/Add`, 'Add', [x, o]);
    const h2 = rms(`${p}/post_attention_layernorm`, mid, b.ones(`model.layers.${l}.post_attention_layernorm.weight`, c.d));
    const gate = b.op(`${p}/mlp/gate_proj/MatMul`, 'MatMul', [h2, w('mlp.gate_proj', [c.d, c.ffn])]);
    const sig = b.op(`${p}/mlp/act_fn/Sigmoid`, 'Sigmoid', [gate]);
    const silu = b.op(`${p}/mlp/act_fn/Mul`, 'Mul', [gate, sig]);
    const up = b.op(`${p}/mlp/up_proj/MatMul`, 'MatMul', [h2, w('mlp.up_proj', [c.d, c.ffn])]);
    const act = b.op(`${p}/mlp/Mul`, 'Mul', [silu, up]);
    const down = b.op(`${p}/mlp/down_proj/MatMul`, 'MatMul', [act, w('mlp.down_proj', [c.ffn, c.d])]);
    x = b.op(`${p}/Add_1`, 'Add', [mid, down]);
  }
  const hf = rms('/model/norm', x, b.ones('model.norm.weight', c.d));
  const logits = b.op('/lm_head/MatMul', 'MatMul', [hf, b.weight('lm_head.weight', [c.d, c.vocab])]);
  return { logits, outType: FLOAT16 };
}

function gpt2(b: Builder, c: Gpt2Config): { logits: string; outType: number } {
  const dh = c.d / c.heads;
  const wte = b.weight('transformer.wte.weight', [c.vocab, c.d]);
  const wpe = b.weight('transformer.wpe.weight', [c.nPos, c.d], 0.01);
  const tok = b.op('/transformer/wte/Gather', 'Gather', [wte, 'input_ids']);
  const pos = positions(b, '/transformer/positions');
  const pe = b.op('/transformer/wpe/Gather', 'Gather', [wpe, pos]);
  let x = b.op('/transformer/Add', 'Add', [tok, pe]);
  const mask = causalMask(b, pos, FLOAT);
  const headShape = b.inline('/transformer/constants/head_shape', [4], INT64, [0, 0, c.heads, dh]);
  const mergeShape = b.inline('/transformer/constants/merge_shape', [3], INT64, [0, 0, c.d]);
  const split = b.inline('/transformer/constants/split', [3], INT64, [c.d, c.d, c.d]);
  const scale = b.inline('/transformer/constants/sqrt_head_dim', [], FLOAT, [Math.sqrt(dh)]);
  const zeros = (name: string, n: number): string => b.inline(name, [n], FLOAT, Array(n).fill(0));
  const ln = (scope: string, v: string, name: string): string =>
    b.op(`${scope}/LayerNormalization`, 'LayerNormalization', [v, b.ones(`${name}.weight`, c.d), zeros(`${name}.bias`, c.d)], [int('axis', -1), float('epsilon', 1e-5)]);
  const linear = (scope: string, v: string, name: string, dims: number[]): string => {
    const m = b.op(`${scope}/MatMul`, 'MatMul', [v, b.weight(`${name}.weight`, dims)]);
    return b.op(`${scope}/Add`, 'Add', [m, zeros(`${name}.bias`, dims[1])]);
  };
  for (let l = 0; l < c.layers; l++) {
    const p = `/transformer/h.${l}`;
    const n = `transformer.h.${l}`;
    const h = ln(`${p}/ln_1`, x, `${n}.ln_1`);
    const qkv = linear(`${p}/attn/c_attn`, h, `${n}.attn.c_attn`, [c.d, 3 * c.d]);
    const [q0, k0, v0] = b.node(`${p}/attn/Split`, 'Split', [qkv, split], [int('axis', 2)], 3);
    const heads = (t: string, i: string, perm: number[]): string => b.op(`${p}/attn/Transpose_${i}`, 'Transpose', [b.op(`${p}/attn/Reshape_${i}`, 'Reshape', [t, headShape])], [ints('perm', perm)]);
    const q = heads(q0, 'q', [0, 2, 1, 3]);
    const kt = heads(k0, 'k', [0, 2, 3, 1]);
    const v = heads(v0, 'v', [0, 2, 1, 3]);
    const s0 = b.op(`${p}/attn/MatMul`, 'MatMul', [q, kt]);
    const s1 = b.op(`${p}/attn/Div`, 'Div', [s0, scale]);
    const s2 = b.op(`${p}/attn/Add`, 'Add', [s1, mask]);
    const pat = b.op(`${p}/attn/Softmax`, 'Softmax', [s2], [int('axis', -1)]);
    const z = b.op(`${p}/attn/MatMul_1`, 'MatMul', [pat, v]);
    const zm = b.op(`${p}/attn/Reshape`, 'Reshape', [b.op(`${p}/attn/Transpose`, 'Transpose', [z], [ints('perm', [0, 2, 1, 3])]), mergeShape]);
    const o = linear(`${p}/attn/c_proj`, zm, `${n}.attn.c_proj`, [c.d, c.d]);
    const mid = b.op(`${p}/Add`, 'Add', [x, o]);
    const h2 = ln(`${p}/ln_2`, mid, `${n}.ln_2`);
    const fc = linear(`${p}/mlp/c_fc`, h2, `${n}.mlp.c_fc`, [c.d, 4 * c.d]);
    // GELU (erf form): x * 0.5 * (1 + erf(x / sqrt 2)).
    const e = b.op(`${p}/mlp/act/Erf`, 'Erf', [b.op(`${p}/mlp/act/Div`, 'Div', [fc, b.inline(`${p}/mlp/act/sqrt2`, [], FLOAT, [Math.SQRT2])])]);
    const g = b.op(`${p}/mlp/act/Mul_1`, 'Mul', [b.op(`${p}/mlp/act/Mul`, 'Mul', [fc, b.op(`${p}/mlp/act/Add`, 'Add', [e, b.inline(`${p}/mlp/act/one`, [], FLOAT, [1])])]), b.inline(`${p}/mlp/act/half`, [], FLOAT, [0.5])]);
    const out = linear(`${p}/mlp/c_proj`, g, `${n}.mlp.c_proj`, [4 * c.d, c.d]);
    x = b.op(`${p}/Add_1`, 'Add', [mid, out]);
  }
  const hf = ln('/transformer/ln_f', x, 'transformer.ln_f');
  const logits = b.op('/lm_head/MatMul', 'MatMul', [hf, b.weight('lm_head.weight', [c.d, c.vocab])]);
  return { logits, outType: FLOAT };
}

/**
 * A byte-level BPE tokenizer.json (GPT-2's pre-tokenizer and decoder) whose merges make each
 * of `words` one token (with its leading space, as GPT-2 spells words after the first), padded
 * with never-produced entries to exactly `vocab` ids.
 */
export function writeTokenizer(dir: string, vocab: number, words: string[]): void {
  // GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 upwards.
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const byteChar: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) byteChar[b] = String.fromCharCode(printable(b) ? b : 256 + extra++);
  const v: Record<string, number> = {};
  const add = (t: string): void => {
    if (!(t in v)) v[t] = Object.keys(v).length;
  };
  for (const c of byteChar) add(c);
  const merges: string[] = [];
  const seen = new Set<string>();
  words.forEach((w, i) => {
    const chars = [...Buffer.from(i === 0 ? w : ` ${w}`, 'utf8')].map((b) => byteChar[b]);
    let cur = chars[0];
    for (const c of chars.slice(1)) {
      const m = `${cur} ${c}`;
      if (!seen.has(m)) {
        seen.add(m);
        merges.push(m);
      }
      cur += c;
      add(cur);
    }
  });
  if (Object.keys(v).length >= vocab) throw new Error(`the tokenizer needs ${Object.keys(v).length} ids, more than ${vocab}`);
  for (let i = Object.keys(v).length; i < vocab; i++) add(`<|unused_${i}|>`);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: v, merges },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
}

if (require.main === module) {
  const [name, dir] = process.argv.slice(2);
  const t0 = performance.now();
  const r = writeModel(name, dir);
  process.stdout.write(`${JSON.stringify({ ...r, seconds: (performance.now() - t0) / 1000 })}\n`);
}
