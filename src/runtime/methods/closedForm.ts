/**
 * The closed-form (ridge regression) update of one linear weight, as in Diff-QuickFix, LocoEdit
 * and MultEdit, in float64:
 *
 *   W' = argmin  sum_j |W' k_j - v_j|^2  +  lambda |W' - W|_F^2  +  mu sum_l |(W' - W) u_l|^2
 *
 * with keys K = [k_1..k_n] (in x n), values V = [v_1..v_n] (out x n; by default v_j = W kt_j, the
 * same layer applied to the target concept's keys) and optional preservation keys U = [u_1..u_m]
 * (ROME's key covariance C0 = mu U U^T, from unrelated prompts). Setting the gradient to zero:
 *
 *   (W' - W)(lambda I + mu U U^T + K K^T) = (V - W K) K^T,
 *
 * which for mu = 0 is W' = (lambda W + V K^T)(lambda I + K K^T)^-1. The in x in matrix is never
 * formed: with A0 = lambda I + mu U U^T and Y = A0^-1 K, Woodbury gives
 *
 *   K^T (A0 + K K^T)^-1 = (I_n + K^T Y)^-1 Y^T,   so   W' = W + (V - W K) (I_n + K^T Y)^-1 Y^T,
 *
 * and A0^-1 K itself is Woodbury on the m x m system: Y = (K - U (lambda/mu I_m + U^T U)^-1 U^T K) / lambda
 * (Y = K / lambda without preservation). Cost: O(out in n) for W K and the final rank-n update,
 * O(in (n + m)^2 + n^3 + m^3) for the rest.
 */
import { LinalgError, abt, gemmOrt, gramRows, solve, transpose } from '../linalg';

export interface ClosedFormInput {
  /** The weight as stored (float32 values). */
  weight: Float32Array;
  outFeatures: number;
  inFeatures: number;
  /** Storage: `out-in` ([out, in], torch.nn.Linear / Gemm transB=1) or `in-out` ([in, out], MatMul x W / Conv1D). */
  layout: 'out-in' | 'in-out';
  /** Source keys, n rows of length in. */
  keys: Float64Array;
  /** Target keys, n rows of length in: values v_j = W kt_j (bias cancels). */
  targetKeys?: Float64Array;
  /** Or explicit values, n rows of length out. */
  values?: Float64Array;
  lambda: number;
  /** Preservation keys (m rows of length in) and their weight mu. */
  preserve?: { keys: Float64Array; weight: number };
  /** Large products: plain JS loops or onnxruntime's float64 Gemm (auto: onnxruntime above ~2e7 multiply-adds). */
  backend?: 'auto' | 'js' | 'ort';
  /** Also return W' - W (float64, stored layout). */
  keepDelta?: boolean;
}

export interface ClosedFormOutput {
  /** The new weight in the stored layout (float32). */
  weight: Float32Array;
  delta?: Float64Array;
  keys: number;
  backend: 'js' | 'ort';
  seconds: number;
}

const ORT_THRESHOLD = 2e7;
const CHUNK_ELEMENTS = 1 << 21;

/** Computes W' (see the file comment). */
export async function closedFormUpdate(inp: ClosedFormInput): Promise<ClosedFormOutput> {
  const t0 = performance.now();
  const { weight, outFeatures: dOut, inFeatures: dIn, layout, keys: K, lambda } = inp;
  if (weight.length !== dOut * dIn) throw new LinalgError(`weight has ${weight.length} values, not ${dOut} x ${dIn}`);
  if (!(lambda > 0)) throw new LinalgError(`lambda must be positive (got ${lambda})`);
  const n = K.length / dIn;
  if (!Number.isInteger(n) || n < 1) throw new LinalgError(`keys: ${K.length} values are not rows of ${dIn}`);
  if (inp.targetKeys && inp.targetKeys.length !== K.length) throw new LinalgError('target keys and keys differ in count');
  if (inp.values && inp.values.length !== n * dOut) throw new LinalgError(`values: expected ${n} rows of ${dOut}`);
  if (!inp.targetKeys === !inp.values) throw new LinalgError('give exactly one of targetKeys and values');
  for (const a of [K, inp.targetKeys, inp.values, inp.preserve?.keys]) if (a && !a.every(Number.isFinite)) throw new LinalgError('keys or values are not finite');

  // Y = A0^-1 K as rows (n x in), then P = (I + K^T Y)^-1 Y^T as rows (n x in).
  const Y = new Float64Array(n * dIn);
  const mu = inp.preserve?.weight ?? 0;
  const U = inp.preserve?.keys;
  const m = U ? U.length / dIn : 0;
  if (U && mu > 0 && m >= 1) {
    if (!Number.isInteger(m)) throw new LinalgError(`preservation keys: ${U.length} values are not rows of ${dIn}`);
    const UK = abt(U, m, K, n, dIn); // m x n
    const S = gramRows(U, m, dIn);
    for (let i = 0; i < m; i++) S[i * m + i] += lambda / mu;
    const Z = solve(S, m, UK, n); // m x n
    Y.set(K);
    for (let l = 0; l < m; l++) {
      const ul = l * dIn;
      for (let j = 0; j < n; j++) {
        const z = Z[l * n + j];
        if (z === 0) continue;
        const yj = j * dIn;
        for (let i = 0; i < dIn; i++) Y[yj + i] -= z * U[ul + i];
      }
    }
    for (let i = 0; i < Y.length; i++) Y[i] /= lambda;
  } else {
    for (let i = 0; i < Y.length; i++) Y[i] = K[i] / lambda;
  }
  const M = abt(K, n, Y, n, dIn);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < a; b++) M[a * n + b] = M[b * n + a] = 0.5 * (M[a * n + b] + M[b * n + a]);
    M[a * n + a] += 1;
  }
  const P = solve(M, n, Y, dIn); // n x in

  // What W must multiply: Kt - K (then R = W (Kt - K) = V - W K), or K (then R = V - W K).
  const Kd = new Float64Array(n * dIn);
  if (inp.targetKeys) for (let i = 0; i < Kd.length; i++) Kd[i] = inp.targetKeys[i] - K[i];
  else Kd.set(K);
  const V = inp.values; // n x out

  const work = dOut * dIn * n;
  const backend = inp.backend === 'js' || inp.backend === 'ort' ? inp.backend : work > ORT_THRESHOLD ? 'ort' : 'js';
  const out = new Float32Array(weight.length);
  const delta = inp.keepDelta ? new Float64Array(weight.length) : undefined;

  if (layout === 'out-in') {
    // Row blocks of W: R_c = W_c Kd^T (rows x n), delta_c = R_c P (rows x in).
    const rowsPer = Math.max(4, Math.floor(CHUNK_ELEMENTS / dIn));
    const PT = backend === 'js' ? transpose(P, n, dIn) : undefined;
    for (let o0 = 0; o0 < dOut; o0 += rowsPer) {
      const o1 = Math.min(dOut, o0 + rowsPer);
      const rows = o1 - o0;
      const Wc = weight.subarray(o0 * dIn, o1 * dIn);
      let R: Float64Array;
      let Dc: Float64Array;
      if (backend === 'ort') {
        R = await gemmOrt(Float64Array.from(Wc), rows, dIn, Kd, n, true);
      } else {
        R = abt(Wc, rows, Kd, n, dIn);
      }
      if (V) for (let o = 0; o < rows; o++) for (let j = 0; j < n; j++) R[o * n + j] = V[j * dOut + o0 + o] - R[o * n + j];
      if (backend === 'ort') Dc = await gemmOrt(R, rows, n, P, dIn, false);
      else Dc = abt(R, rows, PT!, dIn, n);
      const base = o0 * dIn;
      for (let i = 0; i < Dc.length; i++) out[base + i] = Wc[i] + Dc[i];
      delta?.set(Dc, base);
    }
  } else {
    // Stored S = W^T [in, out]. R^T = Kd S (n x out), summed over blocks of S's rows; then
    // delta^T = P^T R^T, block by block of S's rows.
    const rowsPer = Math.max(4, Math.floor(CHUNK_ELEMENTS / dOut));
    const RT = new Float64Array(n * dOut);
    const PT = transpose(P, n, dIn); // in x n
    if (backend === 'js') {
      // Dot-product form: R (out x n) = W Kd^T with W = S^T, one transposed block at a time.
      for (let i0 = 0; i0 < dIn; i0 += rowsPer) {
        const i1 = Math.min(dIn, i0 + rowsPer);
        const c = i1 - i0;
        const Wblk = transpose(weight.subarray(i0 * dOut, i1 * dOut), c, dOut); // out x c
        const Kblk = new Float64Array(n * c);
        for (let j = 0; j < n; j++) Kblk.set(Kd.subarray(j * dIn + i0, j * dIn + i1), j * c);
        const Rb = abt(Wblk, dOut, Kblk, n, c); // out x n
        for (let o = 0; o < dOut; o++) for (let j = 0; j < n; j++) RT[j * dOut + o] += Rb[o * n + j];
      }
    } else {
      for (let i0 = 0; i0 < dIn; i0 += rowsPer) {
        const i1 = Math.min(dIn, i0 + rowsPer);
        const c = i1 - i0;
        const Kblk = new Float64Array(n * c);
        for (let j = 0; j < n; j++) Kblk.set(Kd.subarray(j * dIn + i0, j * dIn + i1), j * c);
        const Rb = await gemmOrt(Kblk, n, c, Float64Array.from(weight.subarray(i0 * dOut, i1 * dOut)), dOut, false);
        for (let i = 0; i < RT.length; i++) RT[i] += Rb[i];
      }
    }
    if (V) for (let i = 0; i < RT.length; i++) RT[i] = V[i] - RT[i];
    const R = backend === 'js' ? transpose(RT, n, dOut) : undefined; // out x n
    for (let i0 = 0; i0 < dIn; i0 += rowsPer) {
      const i1 = Math.min(dIn, i0 + rowsPer);
      const c = i1 - i0;
      const PTc = PT.subarray(i0 * n, i1 * n);
      const Dc = backend === 'ort' ? await gemmOrt(PTc, c, n, RT, dOut, false) : abt(PTc, c, R!, dOut, n); // c x out
      const base = i0 * dOut;
      for (let i = 0; i < Dc.length; i++) out[base + i] = weight[base + i] + Dc[i];
      delta?.set(Dc, base);
    }
  }
  if (!out.every(Number.isFinite)) throw new LinalgError('the update is not finite (keys too large or lambda too small)');
  return { weight: out, delta, keys: n, backend, seconds: (performance.now() - t0) / 1000 };
}
