// FLOP counting for a GPT-2-architecture decoder (pre-LN blocks: attention + 4x MLP).
//
// What is counted: matrix multiplications only, at 2·m·n·k FLOPs each (a multiply and an add
// per term):
//   per position and layer   Q, K, V projections   3 x 2·d·d
//                            attention scores      2·keys·d   (all heads: heads x keys x headDim x 2)
//                            weighted sum of V     2·keys·d
//                            output projection     2·d·d
//                            MLP in + out          2·d·4d + 2·4d·d
//   per position read out    unembedding           2·d·V
// Not counted: layer norms, GELU, softmax, residual adds, masking, embedding lookups, and
// the host-side softmax over the vocabulary (all elementwise, O(d) or O(V) per position).
// `keys` is the number of key positions a query attends over: p + 1 for a causal query at
// position p (the minimum), or S for dense kernels that compute the full S x S score matrix
// and mask it (what onnxruntime executes for the exported graph).

/** @typedef {{ d: number, layers: number, heads: number, vocab: number, ffn?: number }} Config */

const ffn = (c) => c.ffn ?? 4 * c.d;

/** The matmul FLOPs of one block's parts at one position. */
export function parts(c, keys) {
  const d = c.d;
  return {
    q: 2 * d * d,
    kv: 2 * (2 * d * d),
    core: 2 * keys * d + 2 * keys * d, // scores + weighted sum
    o: 2 * d * d,
    mlp: 2 * d * ffn(c) * 2,
  };
}

/** One row's forward over S positions: every block at every position, logits at `logitPositions` positions. */
export function forwardFlops(c, S, { logitPositions = S, dense = true } = {}) {
  let f = 0;
  for (let p = 0; p < S; p++) {
    const x = parts(c, dense ? S : p + 1);
    f += c.layers * (x.q + x.kv + x.core + x.o + x.mlp);
  }
  return f + logitPositions * 2 * c.d * c.vocab;
}

/** ROME's window of restored layers around `l`: [l - w/2, l + w/2) clipped (as the engine). */
export function windowLayers(l, w, L) {
  const lo = Math.max(0, l - Math.floor(w / 2));
  const hi = Math.min(L, l - Math.floor(-w / 2));
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}

/**
 * The minimal FLOPs of one restored row (one noise sample) of a causal trace, given the
 * corrupted run's states of every layer and position (computed once, counted separately):
 *  - residual at (l, t): block l's output at token t is replaced; recompute starts at block l+1;
 *    mlp/attn at (l, t): the module outputs at token t of the window's layers are replaced;
 *    recompute starts inside the window's first layer.
 *  - only states that differ from the corrupted run are recomputed: positions before t never
 *    change (causal attention), their K/V come from the corrupted run's cache; a position's
 *    attention is recomputed when any key/value it reads (or its own query) changed;
 *  - a replaced module is not computed at the replaced token (its K/V still are when its input changed);
 *  - at the last layer only the last position's output is read: other positions need only K, V;
 *  - logits at the last position only, and only when its final state changed (else the score is
 *    the corrupted run's).
 * Not exploited (on purpose, to match the stated floor): restoring a token before the subject
 * is a no-op (its clean and corrupted states are equal), which a smarter engine could skip.
 */
export function restorationFlops(c, S, kind, layer, token, window) {
  const L = c.layers;
  const restored = kind === 'residual' ? [layer] : windowLayers(layer, window, L);
  let changed = new Array(S).fill(false); // block input at each position differs from the corrupted run
  let start;
  if (kind === 'residual') {
    changed[token] = true;
    start = layer + 1;
  } else start = Math.min(...restored);
  let f = 0;
  for (let j = start; j < L; j++) {
    const last = j === L - 1;
    const here = kind !== 'residual' && restored.includes(j);
    const first = changed.indexOf(true); // the first changed input position (-1: none)
    const next = new Array(S).fill(false);
    // queries whose attention is recomputed at this layer
    const query = [];
    for (let p = 0; p < S; p++) {
      const attnChanged = first >= 0 && first <= p;
      const attnRestored = here && kind === 'attn' && p === token;
      const read = !last || p === S - 1;
      query[p] = attnChanged && !attnRestored && read;
    }
    const lastQuery = query.lastIndexOf(true);
    for (let p = 0; p < S; p++) {
      const x = parts(c, p + 1);
      const attnChanged = first >= 0 && first <= p;
      const attnRestored = here && kind === 'attn' && p === token;
      const mlpRestored = here && kind === 'mlp' && p === token;
      const read = !last || p === S - 1;
      if (changed[p] && lastQuery >= p) f += x.kv; // K, V of a changed input, read by a recomputed query
      if (query[p]) f += x.q + x.core + x.o;
      const mid = changed[p] || attnChanged || attnRestored;
      if (mid && !mlpRestored && read) f += x.mlp;
      next[p] = mid || mlpRestored;
    }
    changed = next;
  }
  if (changed[S - 1]) f += 2 * c.d * c.vocab;
  return f;
}

/**
 * The floor of a whole sweep: one clean row and `samples` corrupted rows (full forwards,
 * causal attention, logits at the last position), then every (kind, layer, token)
 * restoration for each of the `samples` rows at its minimal cost. With `firstAffected` = the
 * subject's first token, restorations of earlier tokens cost nothing (in a causal model their
 * clean and corrupted states are equal, so the score is the corrupted run's).
 */
export function sweepFloorFlops(c, S, { kinds, samples, window, firstAffected = 0 }) {
  const base = (1 + samples) * forwardFlops(c, S, { logitPositions: 1, dense: false });
  let rest = 0;
  for (const k of kinds) for (let l = 0; l < c.layers; l++) for (let t = firstAffected; t < S; t++) rest += restorationFlops(c, S, k, l, t, window);
  return { base, restorations: samples * rest, total: base + samples * rest };
}

/**
 * What the engine executes, given the batch rows it ran (observed by the breakdown):
 * src/runtime/methods/causalTrace.ts runs every row (clean, corrupted, restored) as a full
 * forward from the embeddings over all S positions, dense attention, logits at the last
 * position only (the instrumented graph's lastLogits). Valid while the engine works that way.
 */
export function engineFlops(c, S, rows) {
  return { rows, total: rows * forwardFlops(c, S, { logitPositions: 1, dense: true }) };
}

/**
 * What the engine executes for the runs it really made: each run `rows` rows from block `start`
 * on, `positions` query positions (a suffix run: the last ones) against all S keys (dense
 * attention), logits at the last position. In a run with `lastMlpCut` (the suffix runs of a
 * restoration: src/runtime/instrument/lastMlp.ts) the last block's MLP runs at one position.
 */
export function engineRunFlops(c, S, runs) {
  let total = 0;
  for (const { rows, positions, start, lastMlpCut } of runs) {
    const x = parts(c, S);
    total += rows * ((c.layers - start) * positions * (x.q + x.kv + x.core + x.o + x.mlp) + 2 * c.d * c.vocab);
    if (lastMlpCut && start < c.layers) total -= rows * (positions - 1) * x.mlp;
  }
  return { rows: runs.reduce((n, r) => n + r.rows, 0), total };
}
/** ROME's loop: 2 + kinds·L·S forwards (1 + samples rows; the clean one 1 row), logits at every position. */
export function romeFlops(c, S, { kinds, samples }) {
  const calls = kinds.length * c.layers * S;
  return { calls, total: (1 + (1 + samples) * (1 + calls)) * forwardFlops(c, S, { dense: true }) };
}

/**
 * The floor in the issue's own words: every restoration restarts at the restored layer (the
 * block after a restored residual state, the first layer of a restored window) and recomputes
 * every position from the restored token on, at every later layer, with causal attention; logits
 * at the last position; the clean and corrupted runs once. `sweepFloorFlops` is stricter still
 * (the last layer's other positions only for their keys and values, nothing recomputed where
 * the state did not change).
 */
export function statedFloorFlops(c, S, { kinds, samples, window, firstAffected = 0 }) {
  const base = (1 + samples) * forwardFlops(c, S, { logitPositions: 1, dense: false });
  let rest = 0;
  for (const k of kinds) {
    for (let l = 0; l < c.layers; l++) {
      const start = k === 'residual' ? l + 1 : windowLayers(l, window, c.layers)[0];
      for (let t = firstAffected; t < S; t++) {
        for (let j = start; j < c.layers; j++) {
          for (let p = t; p < S; p++) {
            const x = parts(c, p + 1);
            rest += x.q + x.kv + x.core + x.o + x.mlp;
          }
        }
        rest += 2 * c.d * c.vocab;
      }
    }
  }
  return { base, restorations: samples * rest, total: base + samples * rest };
}
