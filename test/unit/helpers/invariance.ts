/**
 * The instrumentation invariance check: a graph instrumented at every value (patch points
 * with masks off, captures everywhere) must give the original outputs exactly. Both run at
 * onnxruntime's 'basic' level: the fusions of higher levels (attention, GELU, LayerNorm) can
 * not fuse across a captured value, which changes results in the last bit, not the model.
 */
import * as ort from 'onnxruntime-node';
import type { OnnxGraph } from '../../../src/runtime/onnx/graph';
import type { OnnxModel } from '../../../src/runtime/onnx/model';
import { onnxType } from '../../../src/runtime/onnx/proto';
import { instrument, patchDefaults, patchableType } from '../../../src/runtime/instrument/rewrite';
import { defaultThreads, fromOrt, openSession, toOrt } from '../../../src/runtime/session';
import type { HostTensor } from '../../../src/runtime/tensor';
import { halfToFloat } from '../../../src/runtime/onnx/float16';

export type Verdict = { ok: true; patched: number; captured: number } | { ok: false; reason: string } | { skipped: string };

const NON_TENSOR = /^(Sequence|Optional|SplitToSequence|ConcatFromSequence)/;

/**
 * Equal, except that float32 results may differ by 2 units in the last place: a patch point
 * hands the next op a fresh buffer, and MLAS's SIMD reductions (ReduceMean, BatchNorm
 * statistics) round differently on differently aligned buffers.
 */
function same(a: HostTensor, b: HostTensor, relTol = 0): string | undefined {
  if (a.type !== b.type || a.dims.join() !== b.dims.join()) return `shape/type ${a.type}[${a.dims}] vs ${b.type}[${b.dims}]`;
  const x = a.data as ArrayLike<number | bigint>;
  const y = b.data as ArrayLike<number | bigint>;
  const bits =
    a.type === 'float32'
      ? [new Int32Array(a.data.buffer, a.data.byteOffset, a.data.length), new Int32Array(b.data.buffer, b.data.byteOffset, b.data.length)]
      : undefined;
  if (a.type === 'float16') {
    // onnxruntime's fused float16 contrib kernels (SkipSimplifiedLayerNormalization) round
    // differently when their input buffer is not one they may reuse in place: compare within
    // 1% of the output's scale instead of bit for bit.
    const fa = Array.from(a.data as Uint16Array, halfToFloat);
    const fb = Array.from(b.data as Uint16Array, halfToFloat);
    // (reduce, not Math.max(...x): spreading 100k+ values overflows the stack)
    const scale = fa.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-3);
    const worst = fa.reduce((m, v, i) => Math.max(m, Math.abs(v - fb[i])), 0);
    return worst <= 0.01 * scale ? undefined : `float16 outputs differ by ${worst} (scale ${scale})`;
  }
  if (relTol && a.type === 'float32') {
    const fa = a.data as Float32Array;
    const fb = b.data as Float32Array;
    const scale = fa.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-6);
    const worst = fa.reduce((m, v, i) => Math.max(m, Math.abs(v - fb[i])), 0);
    return worst <= relTol * scale ? undefined : `outputs differ by ${worst} (scale ${scale}, tolerance ${relTol} of it)`;
  }
  const ulps = 2;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === y[i] || (Number.isNaN(x[i]) && Number.isNaN(y[i]))) continue;
    if (bits && Math.abs(bits[0][i] - bits[1][i]) <= ulps) continue;
    return `element ${i}: ${x[i]} vs ${y[i]}`;
  }
  return undefined;
}

const RANDOM_OPS = /^(Bernoulli|RandomNormal|RandomUniform|RandomNormalLike|RandomUniformLike|Multinomial)$/;

/** Runs the original and the fully instrumented model on `feeds` and compares every output. */
/**
 * `relTol` (fraction of each output's scale) replaces the bit-level comparison where the
 * rewrite changes the arithmetic on purpose: a patched sum of a fused Skip*LayerNormalization
 * is computed by an Add and a LayerNormalization, which round unlike the fused kernel.
 */
export async function checkInvariance(model: OnnxModel, graph: OnnxGraph, feeds: Record<string, HostTensor>, patchOnly?: string[], captureOnly?: string[], relTol = 0): Promise<Verdict> {
  const random = graph.nodes.find((n) => RANDOM_OPS.test(n.op_type));
  if (random) return { skipped: `random op ${random.op_type}: outputs differ from run to run` };
  const ortFeeds = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)]));
  let reference: Record<string, HostTensor>;
  try {
    // The engine's thread count on both sides: kernels split work by thread, and so round.
    const s = await ort.InferenceSession.create(model.path, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3, intraOpNumThreads: defaultThreads() });
    const out = await s.run(ortFeeds);
    reference = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrt(v)]));
    await s.release();
  } catch (e) {
    return { skipped: `onnxruntime does not run the original: ${(e as Error).message.split('\n')[0]}` };
  }
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const intermediates = graph.nodes.filter((n) => !NON_TENSOR.test(n.op_type)).flatMap((n) => n.output).filter((v) => v && !outputs.has(v));
  const capture = captureOnly ?? intermediates;
  const patchable = (v: string): boolean => {
    const t = graph.types.get(v)?.elemType;
    return !!t && patchableType(model.opset, t);
  };
  const patch = patchOnly ?? [...graph.inputs.map((i) => i.name), ...intermediates].filter(patchable);
  try {
    const inst = instrument(model, graph, { capture, patch });
    const bytes = onnxType('ModelProto').encode(inst.proto as never).finish();
    const { session } = await openSession(bytes, { provider: 'cpu', externalDataFolder: model.dir, optimization: 'disabled' });
    const defaults = Object.fromEntries(Object.entries(patchDefaults(inst)).map(([k, v]) => [k, toOrt(v)]));
    const out = await session.run({ ...ortFeeds, ...defaults }, [...outputs]);
    await session.release();
    for (const o of outputs) {
      const diff = same(reference[o], fromOrt(out[o]), relTol);
      if (diff) return { ok: false, reason: `output ${o}: ${diff}` };
    }
    return { ok: true, patched: patch.length, captured: capture.length };
  } catch (e) {
    return { ok: false, reason: (e as Error).message.split('\n')[0] };
  }
}
