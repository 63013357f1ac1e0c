import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closedFormUpdate } from '../../src/runtime/methods/closedForm';
import { Random } from '../../src/runtime/random';

/** Generic dense solve (Gauss-Jordan, partial pivoting): A X = B, A n x n, B n x m, plain arrays. */
function denseSolve(A: number[][], B: number[][]): number[][] {
  const n = A.length;
  const a = A.map((r, i) => [...r, ...B[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const piv = a[c][c];
    for (let k = 0; k < a[c].length; k++) a[c][k] /= piv;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c];
      for (let k = 0; k < a[r].length; k++) a[r][k] -= f * a[c][k];
    }
  }
  return a.map((r) => r.slice(n));
}

/** W' = (lambda W + V K^T + mu W U U^T)(lambda I + K K^T + mu U U^T)^-1 straight from the formula; W [out][in], K/U as lists of keys. */
function denseReference(W: number[][], K: number[][], V: number[][], lambda: number, U: number[][] = [], mu = 0): number[][] {
  const dIn = W[0].length;
  const A = Array.from({ length: dIn }, (_, i) => Array.from({ length: dIn }, (_, j) => (i === j ? lambda : 0) + K.reduce((s, k) => s + k[i] * k[j], 0) + mu * U.reduce((s, u) => s + u[i] * u[j], 0)));
  // B = lambda W + V K^T + mu W U U^T  [out][in]; W' A = B  <=>  A W'^T = B^T (A symmetric).
  const B = W.map((w, o) =>
    Array.from({ length: dIn }, (_, i) => lambda * w[i] + K.reduce((s, k, j) => s + V[j][o] * k[i], 0) + mu * U.reduce((s, u) => s + w.reduce((t, x, c) => t + x * u[c], 0) * u[i], 0)),
  );
  const BT = Array.from({ length: dIn }, (_, i) => B.map((r) => r[i]));
  const XT = denseSolve(A, BT);
  return W.map((_, o) => XT.map((r) => r[o]));
}

function randn(r: Random, n: number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => r.gaussian() * scale);
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

test('closed form: the Woodbury update equals a dense solve of the formula (float64), both layouts, both backends, with and without preservation', async () => {
  const r = new Random(7);
  const dOut = 23;
  const dIn = 37;
  const n = 6;
  const Wrows = Array.from({ length: dOut }, () => Array.from(randn(r, dIn, 0.1), (x) => Math.fround(x)));
  const Kf = randn(r, n * dIn);
  const Ktf = randn(r, n * dIn);
  const Uf = randn(r, 9 * dIn);
  const rows = (f: Float64Array, len: number): number[][] => Array.from({ length: f.length / len }, (_, j) => Array.from(f.subarray(j * len, (j + 1) * len)));
  const K = rows(Kf, dIn);
  const Kt = rows(Ktf, dIn);
  const U = rows(Uf, dIn);
  const V = Kt.map((k) => Wrows.map((w) => w.reduce((s, x, i) => s + x * k[i], 0))); // n x out
  const Wout = Float32Array.from(Wrows.flat());
  const Win = Float32Array.from({ length: dIn * dOut }, (_, x) => Wrows[x % dOut][Math.floor(x / dOut)]);
  let worst = 0;
  for (const [lambda, mu] of [[0.01, 0], [0.5, 0], [0.01, 2]]) {
    const ref = denseReference(Wrows, K, V, lambda, mu ? U : [], mu);
    const refDelta = ref.map((row, o) => row.map((x, i) => x - Wrows[o][i]));
    for (const backend of ['js', 'ort'] as const) {
      for (const layout of ['out-in', 'in-out'] as const) {
        for (const how of ['targetKeys', 'values'] as const) {
          const got = await closedFormUpdate({
            weight: layout === 'out-in' ? Wout : Win,
            outFeatures: dOut,
            inFeatures: dIn,
            layout,
            keys: Kf,
            ...(how === 'targetKeys' ? { targetKeys: Ktf } : { values: Float64Array.from(V.flat()) }),
            lambda,
            preserve: mu ? { keys: Uf, weight: mu } : undefined,
            backend,
            keepDelta: true,
          });
          const d = got.delta!;
          const flatRef = layout === 'out-in' ? refDelta.flat() : Array.from({ length: dIn * dOut }, (_, x) => refDelta[x % dOut][Math.floor(x / dOut)]);
          const rel = relDiff(d, flatRef);
          worst = Math.max(worst, rel);
          assert.ok(rel < 1e-5, `lambda ${lambda} mu ${mu} ${backend} ${layout} ${how}: relative difference ${rel}`);
        }
      }
    }
  }
  console.log(`closed form vs dense solve: max relative difference ${worst.toExponential(2)}`);
});
