/**
 * Small dense linear algebra in float64 for closed-form weight edits: Gram matrices, an SPD
 * solver (Cholesky, with a pivoted-LU fallback), blocked products, and a large-product path
 * through onnxruntime's float64 Gemm (Eigen/MLAS kernels: SIMD and threads that plain JS lacks).
 * Matrices are row-major Float64Arrays; "rows" of a key matrix are the keys themselves.
 */
import * as ort from 'onnxruntime-node';
import { onnxType } from './onnx/proto';

/** A singular or non-finite system. */
export class LinalgError extends Error {
  override readonly name = 'LinalgError';
}

/** X X^T for X [n, len] (row-major): the n x n Gram matrix of X's rows. */
export function gramRows(X: Float64Array, n: number, len: number): Float64Array {
  const G = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    const xa = a * len;
    for (let b = 0; b <= a; b++) {
      const xb = b * len;
      let s = 0;
      for (let k = 0; k < len; k++) s += X[xa + k] * X[xb + k];
      G[a * n + b] = s;
      G[b * n + a] = s;
    }
  }
  return G;
}

/** Lower-triangular Cholesky factor of a symmetric matrix, or undefined when it is not positive definite. */
export function cholesky(A: Float64Array, n: number): Float64Array | undefined {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return undefined;
        L[i * n + i] = Math.sqrt(s);
      } else {
        L[i * n + j] = s / L[j * n + j];
      }
    }
  }
  return L;
}

/**
 * Solves A X = B for X (A: n x n, B: n x m, row-major); A symmetric positive definite by
 * Cholesky, else (or when Cholesky fails) partial-pivoting LU. Returns a new array.
 */
export function solve(A: Float64Array, n: number, B: Float64Array, m: number, symmetric = true): Float64Array {
  const L = symmetric ? cholesky(A, n) : undefined;
  const X = Float64Array.from(B);
  if (L) {
    // L Y = B, then L^T X = Y; row operations on whole rows of B (contiguous, m wide).
    for (let i = 0; i < n; i++) {
      const xi = i * m;
      for (let k = 0; k < i; k++) {
        const f = L[i * n + k];
        if (f === 0) continue;
        const xk = k * m;
        for (let c = 0; c < m; c++) X[xi + c] -= f * X[xk + c];
      }
      const d = 1 / L[i * n + i];
      for (let c = 0; c < m; c++) X[xi + c] *= d;
    }
    for (let i = n - 1; i >= 0; i--) {
      const xi = i * m;
      for (let k = i + 1; k < n; k++) {
        const f = L[k * n + i];
        if (f === 0) continue;
        const xk = k * m;
        for (let c = 0; c < m; c++) X[xi + c] -= f * X[xk + c];
      }
      const d = 1 / L[i * n + i];
      for (let c = 0; c < m; c++) X[xi + c] *= d;
    }
    return X;
  }
  return luSolve(A, n, X, m);
}

/** Gaussian elimination with partial pivoting; overwrites and returns X (= B on entry). */
function luSolve(A0: Float64Array, n: number, X: Float64Array, m: number): Float64Array {
  const A = Float64Array.from(A0);
  let scale = 0;
  for (const v of A) scale = Math.max(scale, Math.abs(v));
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r * n + c]) > Math.abs(A[p * n + c])) p = r;
    if (!(Math.abs(A[p * n + c]) > scale * 1e-14)) throw new LinalgError(`the ${n} x ${n} system is singular (a larger lambda regularises it)`);
    if (p !== c) {
      for (let k = 0; k < n; k++) [A[c * n + k], A[p * n + k]] = [A[p * n + k], A[c * n + k]];
      for (let k = 0; k < m; k++) [X[c * m + k], X[p * m + k]] = [X[p * m + k], X[c * m + k]];
    }
    const inv = 1 / A[c * n + c];
    for (let r = c + 1; r < n; r++) {
      const f = A[r * n + c] * inv;
      if (f === 0) continue;
      for (let k = c; k < n; k++) A[r * n + k] -= f * A[c * n + k];
      for (let k = 0; k < m; k++) X[r * m + k] -= f * X[c * m + k];
    }
  }
  for (let r = n - 1; r >= 0; r--) {
    for (let k = r + 1; k < n; k++) {
      const f = A[r * n + k];
      if (f === 0) continue;
      for (let c = 0; c < m; c++) X[r * m + c] -= f * X[k * m + c];
    }
    const inv = 1 / A[r * n + r];
    for (let c = 0; c < m; c++) X[r * m + c] *= inv;
  }
  return X;
}

/** Transpose of a rows x cols row-major matrix (blocked for cache). */
export function transpose<T extends Float32Array | Float64Array>(X: T, rows: number, cols: number): T {
  const out = new (X.constructor as new (n: number) => T)(rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = X[r * cols + c];
    }
  }
  return out;
}

/**
 * C = X Y^T (X: na x len, Y: nb x len, both row-major, so every entry is a dot product of two
 * contiguous rows), in float64. Register-blocked 4 x 4 with the shared dimension cut into panels
 * that stay in cache.
 */
export function abt(X: Float32Array | Float64Array, na: number, Y: Float64Array, nb: number, len: number): Float64Array {
  const C = new Float64Array(na * nb);
  const KC = 512;
  for (let k0 = 0; k0 < len; k0 += KC) {
    const k1 = Math.min(len, k0 + KC);
    let a = 0;
    for (; a + 4 <= na; a += 4) {
      const x0 = a * len;
      const x1 = x0 + len;
      const x2 = x1 + len;
      const x3 = x2 + len;
      let b = 0;
      for (; b + 4 <= nb; b += 4) {
        const y0 = b * len;
        const y1 = y0 + len;
        const y2 = y1 + len;
        const y3 = y2 + len;
        let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (let k = k0; k < k1; k++) {
          const u = Y[y0 + k], v = Y[y1 + k], w = Y[y2 + k], z = Y[y3 + k];
          let p = X[x0 + k];
          c00 += p * u; c01 += p * v; c02 += p * w; c03 += p * z;
          p = X[x1 + k];
          c10 += p * u; c11 += p * v; c12 += p * w; c13 += p * z;
          p = X[x2 + k];
          c20 += p * u; c21 += p * v; c22 += p * w; c23 += p * z;
          p = X[x3 + k];
          c30 += p * u; c31 += p * v; c32 += p * w; c33 += p * z;
        }
        let o = a * nb + b;
        C[o] += c00; C[o + 1] += c01; C[o + 2] += c02; C[o + 3] += c03; o += nb;
        C[o] += c10; C[o + 1] += c11; C[o + 2] += c12; C[o + 3] += c13; o += nb;
        C[o] += c20; C[o + 1] += c21; C[o + 2] += c22; C[o + 3] += c23; o += nb;
        C[o] += c30; C[o + 1] += c31; C[o + 2] += c32; C[o + 3] += c33;
      }
      for (; b < nb; b++) for (let r = 0; r < 4; r++) C[(a + r) * nb + b] += dot(X, (a + r) * len, Y, b * len, k0, k1);
    }
    for (; a < na; a++) for (let b = 0; b < nb; b++) C[a * nb + b] += dot(X, a * len, Y, b * len, k0, k1);
  }
  return C;
}

function dot(X: Float32Array | Float64Array, xo: number, Y: Float64Array, yo: number, k0: number, k1: number): number {
  let s = 0;
  for (let k = k0; k < k1; k++) s += X[xo + k] * Y[yo + k];
  return s;
}

// ---------------------------------------------------------------------------------------------
// Large products through onnxruntime: a one-node float64 Gemm model, built in memory once.

const gemmSessions = new Map<string, Promise<ort.InferenceSession>>();

function gemmModel(transB: boolean): Uint8Array {
  const DOUBLE = 11;
  const vi = (name: string, dims: string[]): object => ({ name, type: { tensor_type: { elem_type: DOUBLE, shape: { dim: dims.map((d) => ({ dim_param: d })) } } } });
  const T = onnxType('ModelProto');
  const m = T.fromObject({
    ir_version: 8,
    producer_name: 'mechanist-linalg',
    opset_import: [{ domain: '', version: 17 }],
    graph: {
      name: 'gemm',
      node: [{ op_type: 'Gemm', name: 'gemm', input: ['A', 'B'], output: ['Y'], attribute: [{ name: 'transB', type: 2, i: transB ? 1 : 0 }] }],
      input: [vi('A', ['m', 'k']), vi('B', transB ? ['n', 'k'] : ['k', 'n'])],
      output: [vi('Y', ['m', 'n'])],
    },
  });
  return T.encode(m).finish();
}

function gemmSession(transB: boolean, threads?: number): Promise<ort.InferenceSession> {
  const key = `${transB}/${threads ?? 0}`;
  let s = gemmSessions.get(key);
  if (!s) {
    s = ort.InferenceSession.create(gemmModel(transB), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'disabled',
      logSeverityLevel: 3,
      ...(threads ? { intraOpNumThreads: threads } : {}),
    });
    gemmSessions.set(key, s);
    s.catch(() => gemmSessions.delete(key));
  }
  return s;
}

/**
 * float64 product by onnxruntime: A [m, k] times B [k, n] (or B^T with `transB`, B [n, k]).
 * Returns C [m, n] row-major.
 */
export async function gemmOrt(A: Float64Array, m: number, k: number, B: Float64Array, n: number, transB: boolean, threads?: number): Promise<Float64Array> {
  const s = await gemmSession(transB, threads);
  const out = await s.run({ A: new ort.Tensor('float64', A, [m, k]), B: new ort.Tensor('float64', B, transB ? [n, k] : [k, n]) });
  return out.Y.data as Float64Array;
}
