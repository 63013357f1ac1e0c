/**
 * Decomposition of a vision transformer's representation ("Decomposing and Interpreting Image
 * Representations via Text in ViTs Beyond CLIP", Balasubramanian et al. 2024; and Gandelsman et
 * al.'s CLIP decomposition before it).
 *
 * The residual stream at the CLS position after the last block is an exact sum of:
 *   `embed` (the first block's input at CLS: class + position embeddings, after any pre-norm),
 *   `blocks.L.attn.head.H` (z_H W_O^H: head H's slice of the merged heads times its rows of the
 *   output projection), `blocks.L.attn.bias` (the output projection's bias) and `blocks.L.mlp`
 *   (the MLP's output at CLS, bias included).
 * The final LayerNorm is linearised at the actual input r (its mean and std over features):
 *   LN(r) = sum_i gamma * (c_i - mean(c_i)) / std(r) + beta, std(r) = sqrt(var(r) + eps),
 * and its constant beta is split evenly over the N components (beta / N); a projection P with
 * bias b (CLIP's visual projection) maps each: vector_i = P(gamma (c_i - mean c_i) / std + beta / N)
 * + b / N. So sum_i vector_i is the model's own output (image_embeds; for a model without a
 * projection, e.g. a classifier, the normalised CLS: its pre-logits).
 *
 * Per-token split (heat maps): head H's contribution is sum_j A_H[CLS, j] v_j^H W_O^H, with v_j the
 * value vectors (recomputed from the value projection's captured input); each token's part goes
 * through the same linear map, and the head's share of the constant is split evenly over tokens.
 *
 * Text space: for CLIP the vectors are already in the joint space. For other ViTs, `fitAlignment`
 * fits, by ridge regression over a set of images, one linear map per component plus a shared bias
 * from the components to a CLIP image embedding of the same image (CompAlign, without the paper's
 * extra orthogonality term): sum_i A_i c_i + b ~ clip(x); component i's text-space vector is
 * A_i c_i + b / N.
 *
 * Scoring (the paper's property scores): a feature's descriptions are embedded by the text tower
 * and orthonormalised (Gram-Schmidt) into directions d_k; a component's score is the mean over k of
 * the Pearson correlation, over images, between <vector_i(x), d_k> and <total(x), d_k>.
 */
import { ModuleIndex } from '../architecture/modules';
import { linearOfNode } from '../architecture/linear';
import type { AttentionInfo } from '../architecture/types';
import { throwIfCancelled } from '../cancel';
import { InputError } from '../feeds';
import type { HookedModel, PreparedSession } from '../instrument/hookedModel';
import { asFloat32 } from '../tensor';
import type { HostTensor } from '../tensor';
import { initializerValues, valueProjection, weightInOut } from './weights';

export type ComponentKind = 'embed' | 'head' | 'bias' | 'mlp';

export interface DecomposedComponent {
  name: string;
  kind: ComponentKind;
  layer?: number;
  head?: number;
  /** The contribution to the residual stream at CLS (before the final norm). */
  residual: Float64Array;
  /** The contribution to the output (after the linearised final norm and the projection). */
  vector: Float64Array;
  /** Per source token (heads, with `perToken`): vectors that sum to `vector`. */
  tokens?: Float64Array[];
}

export interface Decomposition {
  components: DecomposedComponent[];
  /** Sum of the component vectors. */
  total: Float64Array;
  /** The model's own output (projection output, or the normalised CLS). */
  output: Float64Array;
  /** max |total - output| / max |output|. */
  reconstructionError: number;
  /** max |sum of residual parts - actual final-norm input| / max |input|. */
  residualError: number;
  /** std(r) of the final norm's input (1 without a final norm). */
  std: number;
  /** Number of tokens (CLS included). */
  tokens: number;
  /** Patch grid [rows, cols] of tokens 1.. when they form a square. */
  grid?: [number, number];
}

export interface DecomposeOptions {
  perToken?: boolean;
  /** The token whose representation is decomposed (default 0, the CLS token). */
  position?: number;
  /** Images per session run (default 16). */
  batch?: number;
}

interface LayerWeights {
  a: AttentionInfo;
  /** Output projection [in = H*dh][out = d]. */
  wo: Float64Array;
  bo?: Float64Array;
  /** Value projection [in][kvHeads*dh] and bias, for per-token splits. */
  wv?: Float64Array;
  bv?: Float64Array;
  vInput?: string;
}

/** Reads a model's decomposition weights once and runs images through one instrumented session. */
export class Decomposer {
  readonly layers: LayerWeights[];
  readonly d: number;
  /** Output width (projection outputs, or d). */
  readonly p: number;
  private readonly norm?: { gamma: Float64Array; beta: Float64Array; eps: number };
  /** Projection [d][p] and bias. */
  private readonly proj?: { w: Float64Array; b?: Float64Array };
  /** Where the output is read: a graph output or a captured tensor. */
  private readonly outputName: string;
  private readonly outputIsGraphOutput: boolean;
  private readonly inputName: string;
  private session?: Promise<PreparedSession>;
  private sessionPerToken = false;

  constructor(readonly hooked: HookedModel) {
    const { arch, graph } = hooked;
    if (arch.family === 'unknown' || arch.layers === 0) throw new InputError('decomposition needs a recognised vision transformer (no blocks were found in this model)');
    const L = arch.layers;
    this.layers = arch.blocks.map((b, l) => {
      const a = b.attention;
      if (!a) throw new InputError(`block ${l} has no self-attention that discovery could find`);
      if (a.fused) throw new InputError(`block ${l}'s attention is a fused ${a.fused} op: per-head decomposition needs an unfused export`);
      if (!a.o) throw new InputError(`block ${l}'s attention has no output projection that discovery could find`);
      if (a.o.inFeatures !== a.heads * a.headDim) throw new InputError(`block ${l}'s output projection reads ${a.o.inFeatures} values, expected ${a.heads} heads x ${a.headDim}`);
      return { a, wo: weightInOut(hooked, a.o), bo: initializerValues(hooked, a.o.bias) };
    });
    this.d = this.layers[0].a.o!.outFeatures;
    for (const h of ['blocks.0.hook_resid_pre', `blocks.${L - 1}.hook_resid_post`, ...arch.blocks.flatMap((_, l) => [`blocks.${l}.attn.hook_z`, `blocks.${l}.hook_mlp_out`])]) {
      if (!arch.hookPoints.some((x) => x.name === h)) throw new InputError(`decomposition needs the hook point ${h}, which discovery did not find in this model`);
    }
    const input = graph.inputs.find((i) => !graph.initializers.has(i.name));
    if (!input) throw new InputError('the model has no input');
    this.inputName = input.name;

    // Final norm: a LayerNormalization node.
    if (arch.finalNorm) {
      const ln = arch.finalNorm.nodes.map((n) => graph.nodeByName.get(n)!).find((n) => n.op_type === 'LayerNormalization');
      if (!ln) throw new InputError(`the final norm (${arch.finalNorm.path}) is not a LayerNormalization op: only LayerNorm can be linearised here`);
      const gamma = initializerValues(hooked, ln.input[1]);
      const beta = initializerValues(hooked, ln.input[2]) ?? new Float64Array(this.d);
      const epsAttr = ln.attribute.find((x) => x.name === 'epsilon');
      if (!gamma) throw new InputError('the final LayerNorm has no constant scale');
      this.norm = { gamma, beta, eps: epsAttr?.f ?? 1e-5 };
    }
    // Projection: CLIP's visual projection (a classifier is left out: its input is the pre-logits).
    let outName = arch.hookPoints.find((h) => h.name === 'ln_final.hook_normalized')?.tensor;
    this.p = this.d;
    if (arch.projection) {
      const idx = new ModuleIndex(graph);
      const node = arch.projection.nodes.map((n) => graph.nodeByName.get(n)!).find((n) => ['MatMul', 'Gemm'].includes(n.op_type));
      const lin = node ? linearOfNode(idx, node, arch.projection.path) : undefined;
      if (!lin || !node) throw new InputError(`the projection (${arch.projection.path}) is not a linear layer`);
      if (lin.inFeatures !== this.d) throw new InputError(`the projection reads ${lin.inFeatures} values, expected ${this.d}`);
      this.proj = { w: weightInOut(hooked, lin), b: initializerValues(hooked, lin.bias) };
      this.p = lin.outFeatures;
      outName = node.output[0];
      if (lin.bias && node.op_type === 'MatMul') {
        const add = (graph.consumers.get(node.output[0]) ?? []).find((c) => c.op_type === 'Add');
        if (add) outName = add.output[0];
      }
    }
    if (!outName) throw new InputError('the model has no final norm or projection output to decompose');
    this.outputName = outName;
    this.outputIsGraphOutput = graph.outputs.some((o) => o.name === outName);
  }

  get width(): number {
    return this.p;
  }

  private prepareSession(perToken: boolean): Promise<PreparedSession> {
    if (this.session && (this.sessionPerToken || !perToken)) return this.session;
    const L = this.layers.length;
    const capture = ['blocks.0.hook_resid_pre', `blocks.${L - 1}.hook_resid_post`];
    for (let l = 0; l < L; l++) capture.push(`blocks.${l}.attn.hook_z`, `blocks.${l}.hook_mlp_out`);
    if (!this.outputIsGraphOutput) capture.push(this.outputName);
    if (perToken) {
      this.layers.forEach((lw, l) => {
        if (!lw.wv) {
          const v = valueProjection(this.hooked, lw.a, l);
          lw.wv = v.w;
          lw.bv = v.b;
          lw.vInput = this.hooked.graph.nodeByName.get(v.lin.node)!.input[0];
        }
        capture.push(`blocks.${l}.attn.hook_pattern`, lw.vInput!);
      });
    }
    this.sessionPerToken = perToken;
    this.session = this.hooked.prepare({ capture });
    return this.session;
  }

  /** Names of the components, in order. */
  componentNames(): { name: string; kind: ComponentKind; layer?: number; head?: number }[] {
    const out: { name: string; kind: ComponentKind; layer?: number; head?: number }[] = [{ name: 'embed', kind: 'embed' }];
    this.layers.forEach((lw, l) => {
      for (let h = 0; h < lw.a.heads; h++) out.push({ name: `blocks.${l}.attn.head.${h}`, kind: 'head', layer: l, head: h });
      if (lw.bo) out.push({ name: `blocks.${l}.attn.bias`, kind: 'bias', layer: l });
      out.push({ name: `blocks.${l}.mlp`, kind: 'mlp', layer: l });
    });
    return out;
  }

  /** Decomposes every image of a pixel_values batch [B, 3, H, W]. */
  async decompose(pixels: HostTensor, opts: DecomposeOptions = {}, signal?: AbortSignal): Promise<Decomposition[]> {
    const B = pixels.dims[0];
    const per = Math.max(1, opts.batch ?? 16);
    const rowSize = pixels.data.length / B;
    const out: Decomposition[] = [];
    for (let b0 = 0; b0 < B; b0 += per) {
      throwIfCancelled(signal);
      const n = Math.min(per, B - b0);
      const data = (pixels.data as Float32Array).subarray(b0 * rowSize, (b0 + n) * rowSize);
      out.push(...(await this.run({ type: pixels.type, data, dims: [n, ...pixels.dims.slice(1)] }, opts)));
    }
    return out;
  }

  private async run(pixels: HostTensor, opts: DecomposeOptions): Promise<Decomposition[]> {
    const perToken = !!opts.perToken;
    const session = await this.prepareSession(perToken);
    const L = this.layers.length;
    const fetch = ['blocks.0.hook_resid_pre', `blocks.${L - 1}.hook_resid_post`];
    for (let l = 0; l < L; l++) fetch.push(`blocks.${l}.attn.hook_z`, `blocks.${l}.hook_mlp_out`);
    if (!this.outputIsGraphOutput) fetch.push(this.outputName);
    if (perToken) this.layers.forEach((lw, l) => fetch.push(`blocks.${l}.attn.hook_pattern`, lw.vInput!));
    const res = await session.run({ [this.inputName]: pixels }, { fetch, outputs: this.outputIsGraphOutput ? [this.outputName] : [] });
    const get = (h: string): Float32Array => asFloat32(res.cache.get(h)!);
    const B = pixels.dims[0];
    const residPre = res.cache.get('blocks.0.hook_resid_pre')!;
    const S = residPre.dims[1];
    const D = this.d;
    const pos = opts.position ?? 0;
    if (residPre.dims.length !== 3 || residPre.dims[2] !== D) throw new InputError(`the first block's input has shape [${residPre.dims.join(', ')}], expected [batch, tokens, ${D}]`);
    if (pos < 0 || pos >= S) throw new InputError(`position ${pos} is outside the ${S} tokens`);
    const outT = this.outputIsGraphOutput ? res.outputs[this.outputName] : res.cache.get(this.outputName)!;
    const outV = asFloat32(outT);
    const outPerRow = outV.length / B;
    const outRow = (b: number): Float64Array => {
      // [B, p] or [B, S, p] (the norm applied to every token): take the decomposed position.
      const off = outPerRow === this.p ? b * this.p : b * outPerRow + pos * this.p;
      return Float64Array.from(outV.subarray(off, off + this.p));
    };
    const at = (h: string, b: number, width = D): Float64Array => {
      const v = get(h);
      const off = (b * S + pos) * width;
      return Float64Array.from(v.subarray(off, off + width));
    };
    const side = Math.round(Math.sqrt(S - 1));
    const grid: [number, number] | undefined = side * side === S - 1 && side > 0 ? [side, side] : undefined;

    const results: Decomposition[] = [];
    for (let b = 0; b < B; b++) {
      const comps: DecomposedComponent[] = [];
      const tokenParts = new Map<DecomposedComponent, Float64Array[]>();
      comps.push({ name: 'embed', kind: 'embed', residual: at('blocks.0.hook_resid_pre', b), vector: new Float64Array(0) });
      this.layers.forEach((lw, l) => {
        const { a, wo, bo } = lw;
        const H = a.heads;
        const dh = a.headDim;
        const z = at(`blocks.${l}.attn.hook_z`, b, H * dh);
        let perTok: Float64Array[][] | undefined;
        if (perToken) perTok = this.tokenSplit(lw, get(`blocks.${l}.attn.hook_pattern`), get(lw.vInput!), b, S, pos);
        for (let h = 0; h < H; h++) {
          const c = new Float64Array(D);
          for (let e = 0; e < dh; e++) {
            const ze = z[h * dh + e];
            const row = (h * dh + e) * D;
            for (let o = 0; o < D; o++) c[o] += ze * wo[row + o];
          }
          const comp: DecomposedComponent = { name: `blocks.${l}.attn.head.${h}`, kind: 'head', layer: l, head: h, residual: c, vector: new Float64Array(0) };
          comps.push(comp);
          if (perTok) tokenParts.set(comp, perTok[h]);
        }
        if (bo) comps.push({ name: `blocks.${l}.attn.bias`, kind: 'bias', layer: l, residual: Float64Array.from(bo), vector: new Float64Array(0) });
        comps.push({ name: `blocks.${l}.mlp`, kind: 'mlp', layer: l, residual: at(`blocks.${l}.hook_mlp_out`, b), vector: new Float64Array(0) });
      });

      // The actual final-norm input, and how well the parts add up to it.
      const r = at(`blocks.${L - 1}.hook_resid_post`, b);
      const sum = new Float64Array(D);
      for (const c of comps) for (let o = 0; o < D; o++) sum[o] += c.residual[o];
      const residualError = maxAbs(sub(sum, r)) / Math.max(maxAbs(r), 1e-30);

      const N = comps.length;
      let std = 1;
      if (this.norm) {
        let m = 0;
        for (const v of r) m += v;
        m /= D;
        let s2 = 0;
        for (const v of r) s2 += (v - m) ** 2;
        std = Math.sqrt(s2 / D + this.norm.eps);
      }
      // Constant share of each component: P(beta / N) + b / N.
      const constant = new Float64Array(this.p);
      if (this.norm) constant.set(this.project(this.norm.beta.map((v) => v / N), false));
      if (this.proj?.b) for (let o = 0; o < this.p; o++) constant[o] += this.proj.b[o] / N;
      const linear = (c: Float64Array): Float64Array => {
        if (!this.norm) return this.project(c, false);
        let m = 0;
        for (const v of c) m += v;
        m /= D;
        const x = new Float64Array(D);
        for (let o = 0; o < D; o++) x[o] = (this.norm.gamma[o] * (c[o] - m)) / std;
        return this.project(x, false);
      };
      const total = new Float64Array(this.p);
      for (const c of comps) {
        c.vector = linear(c.residual);
        for (let o = 0; o < this.p; o++) {
          c.vector[o] += constant[o];
          total[o] += c.vector[o];
        }
        const parts = tokenParts.get(c);
        if (parts) {
          c.tokens = parts.map((t) => {
            const v = linear(t);
            for (let o = 0; o < this.p; o++) v[o] += constant[o] / parts.length;
            return v;
          });
        }
      }
      const output = outRow(b);
      const reconstructionError = maxAbs(sub(total, output)) / Math.max(maxAbs(output), 1e-30);
      results.push({ components: comps, total, output, reconstructionError, residualError, std, tokens: S, grid });
    }
    return results;
  }

  /** x [d] through the projection (identity without one); `bias` adds its bias. */
  private project(x: Float64Array, bias: boolean): Float64Array {
    if (!this.proj) return Float64Array.from(x);
    const P = this.p;
    const y = new Float64Array(P);
    for (let i = 0; i < this.d; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * P;
      for (let o = 0; o < P; o++) y[o] += xi * this.proj.w[row + o];
    }
    if (bias && this.proj.b) for (let o = 0; o < P; o++) y[o] += this.proj.b[o];
    return y;
  }

  /** parts[h][j]: A_h[pos, j] (x_j W_V + b_V)^h W_O^h, residual space. */
  private tokenSplit(lw: LayerWeights, pattern: Float32Array, x: Float32Array, b: number, S: number, pos: number): Float64Array[][] {
    const { a, wo, wv, bv } = lw;
    const H = a.heads;
    const dh = a.headDim;
    const KV = a.kvHeads;
    const width = KV * dh;
    const D = this.d;
    const I = wv!.length / width;
    if (x.length % (S * I) !== 0) throw new InputError(`the value projection's input has ${x.length} values, not a multiple of ${S} tokens x ${I}`);
    if (pattern.length % (H * S * S) !== 0) throw new InputError(`the attention pattern has ${pattern.length} values, not a multiple of ${H} heads x ${S} x ${S}`);
    const val = new Float64Array(S * width);
    for (let j = 0; j < S; j++) {
      const xo = (b * S + j) * I;
      for (let i = 0; i < I; i++) {
        const xi = x[xo + i];
        if (xi === 0) continue;
        const row = i * width;
        for (let c = 0; c < width; c++) val[j * width + c] += xi * wv![row + c];
      }
      if (bv) for (let c = 0; c < width; c++) val[j * width + c] += bv[c];
    }
    const out: Float64Array[][] = [];
    for (let h = 0; h < H; h++) {
      const g = Math.floor((h * KV) / H);
      const parts: Float64Array[] = [];
      for (let j = 0; j < S; j++) {
        const w = pattern[((b * H + h) * S + pos) * S + j];
        const vec = new Float64Array(D);
        for (let e = 0; e < dh; e++) {
          const s = w * val[j * width + g * dh + e];
          if (s === 0) continue;
          const row = (h * dh + e) * D;
          for (let o = 0; o < D; o++) vec[o] += s * wo[row + o];
        }
        parts.push(vec);
      }
      out.push(parts);
    }
    return out;
  }
}

function sub(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v - b[i]);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

// --------------------------------------------------------------------------- text space

/** Orthonormal directions spanning the given vectors (Gram-Schmidt; near-dependent ones dropped). */
export function gramSchmidt(vectors: ArrayLike<number>[], tol = 1e-8): Float64Array[] {
  const basis: Float64Array[] = [];
  for (const v of vectors) {
    const u = Float64Array.from(v);
    const n0 = Math.sqrt(dot(u, u));
    for (let pass = 0; pass < 2; pass++) {
      for (const q of basis) {
        const d = dot(u, q);
        for (let i = 0; i < u.length; i++) u[i] -= d * q[i];
      }
    }
    const n = Math.sqrt(dot(u, u));
    if (n <= tol * Math.max(n0, 1e-30)) continue;
    for (let i = 0; i < u.length; i++) u[i] /= n;
    basis.push(u);
  }
  return basis;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Pearson correlation (0 when either side is constant). */
export function correlation(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  const den = Math.sqrt(sxx * syy);
  return den > 1e-300 ? sxy / den : 0;
}

export interface ComponentScore {
  name: string;
  score: number;
}

/**
 * Feature scores: for each component, the mean over the orthonormal directions of the
 * correlation, over images, between the component's projection and the total's projection.
 * `vectors[image][component]` and `totals[image]` are in the directions' space. Sorted, highest first.
 */
export function featureScores(names: string[], vectors: Float64Array[][], totals: Float64Array[], directions: Float64Array[]): ComponentScore[] {
  if (vectors.length < 2) throw new InputError('feature scores need at least two images (correlations over images)');
  if (!directions.length) throw new InputError('the feature has no directions (no descriptions, or all embed to the same vector)');
  const t = directions.map((d) => totals.map((x) => dot(x, d)));
  const scores = names.map((name, i) => {
    let s = 0;
    directions.forEach((d, k) => {
      s += correlation(
        vectors.map((v) => dot(v[i], d)),
        t[k],
      );
    });
    return { name, score: s / directions.length };
  });
  return scores.sort((a, b) => b.score - a.score);
}

/**
 * Ranks descriptions for a component: the mean (over the images of interest) projection of the
 * component's vector onto each unit text embedding, after subtracting `baseline` (the
 * component's mean vector over a reference set of images, so that what is ranked is what the
 * component adds on these images, not its constant offset).
 */
export function topDescriptions(componentVectors: Float64Array[], texts: string[], textEmbeds: ArrayLike<number>[], baseline?: Float64Array): { text: string; score: number }[] {
  return texts
    .map((text, k) => {
      const u = unit(textEmbeds[k]);
      const off = baseline ? dot(baseline, u) : 0;
      const s = componentVectors.reduce((acc, v) => acc + dot(v, u) - off, 0) / componentVectors.length;
      return { text, score: s };
    })
    .sort((a, b) => b.score - a.score);
}

/** The mean of vectors. */
export function meanVector(vs: Float64Array[]): Float64Array {
  const m = new Float64Array(vs[0]?.length ?? 0);
  for (const v of vs) for (let o = 0; o < m.length; o++) m[o] += v[o] / vs.length;
  return m;
}

/** Ranks images by the projection of a component's vector onto a unit text embedding. */
export function retrieve(images: string[], componentVectors: Float64Array[], textEmbed: ArrayLike<number>): { image: string; score: number }[] {
  const u = unit(textEmbed);
  return images.map((image, i) => ({ image, score: dot(componentVectors[i], u) })).sort((a, b) => b.score - a.score);
}

/**
 * A heat map over the patch grid: each patch token's part of a head (or the sum over several
 * heads), projected onto a unit direction, or its norm without one. Token 0 (CLS) is reported apart.
 */
export function tokenHeatmap(d: Decomposition, componentNames: string[], direction?: ArrayLike<number>): { cls: number; grid: number[][] } {
  if (!d.grid) throw new InputError(`the ${d.tokens - 1} patch tokens do not form a square grid`);
  const comps = componentNames.map((n) => {
    const c = d.components.find((x) => x.name === n);
    if (!c) throw new InputError(`no component named "${n}"`);
    if (!c.tokens) throw new InputError(`component "${n}" has no per-token split (only attention heads do; decompose with perToken)`);
    return c;
  });
  const u = direction ? unit(direction) : undefined;
  const value = (j: number): number => {
    const v = new Float64Array(comps[0].vector.length);
    for (const c of comps) for (let o = 0; o < v.length; o++) v[o] += c.tokens![j][o];
    return u ? dot(v, u) : Math.sqrt(dot(v, v));
  };
  const [rows, cols] = d.grid;
  const grid = Array.from({ length: rows }, (_, y) => Array.from({ length: cols }, (_, x) => value(1 + y * cols + x)));
  return { cls: value(0), grid };
}

export function unit(v: ArrayLike<number>): Float64Array {
  const n = Math.sqrt(dot(v, v)) || 1;
  return Float64Array.from(v, (x) => x / n);
}

// --------------------------------------------------------------------------- alignment (ViTs without a text space)

/** Per-component linear maps into a CLIP space: text vector_i = A_i c_i + bias / N. */
export interface Alignment {
  /** maps[i]: [d][p] for component i. */
  maps: Float64Array[];
  bias: Float64Array;
  d: number;
  p: number;
  lambda: number;
  /** R^2 of sum_i A_i c_i + b against the targets on the fitting images. */
  r2: number;
}

/**
 * Fits the maps by ridge regression (features: the concatenated component vectors, centred; an
 * unpenalised bias): minimise sum_x || sum_i A_i c_i(x) + b - y(x) ||^2 + lambda sum_i ||A_i||_F^2.
 * Solved in the dual (n x n) when there are fewer images than features, else in the primal.
 */
export function fitAlignment(components: Float64Array[][], targets: Float64Array[], lambda = 1): Alignment {
  const n = components.length;
  if (n < 2 || targets.length !== n) throw new InputError('alignment needs at least two images with a target embedding each');
  const N = components[0].length;
  const d = components[0][0].length;
  const p = targets[0].length;
  const F = N * d;
  const X = new Float64Array(n * F);
  for (let s = 0; s < n; s++) for (let i = 0; i < N; i++) X.set(components[s][i], s * F + i * d);
  const mx = new Float64Array(F);
  const my = new Float64Array(p);
  for (let s = 0; s < n; s++) {
    for (let f = 0; f < F; f++) mx[f] += X[s * F + f] / n;
    for (let o = 0; o < p; o++) my[o] += targets[s][o] / n;
  }
  for (let s = 0; s < n; s++) for (let f = 0; f < F; f++) X[s * F + f] -= mx[f];
  const Y = new Float64Array(n * p);
  for (let s = 0; s < n; s++) for (let o = 0; o < p; o++) Y[s * p + o] = targets[s][o] - my[o];
  // W [F][p]
  let W: Float64Array;
  if (n <= F) {
    const K = new Float64Array(n * n);
    for (let a = 0; a < n; a++)
      for (let b = a; b < n; b++) {
        let s = 0;
        for (let f = 0; f < F; f++) s += X[a * F + f] * X[b * F + f];
        K[a * n + b] = K[b * n + a] = s + (a === b ? lambda : 0);
      }
    const alpha = solve(K, Y, n, p); // [n][p]
    W = new Float64Array(F * p);
    for (let s = 0; s < n; s++) for (let f = 0; f < F; f++) {
      const x = X[s * F + f];
      if (x === 0) continue;
      for (let o = 0; o < p; o++) W[f * p + o] += x * alpha[s * p + o];
    }
  } else {
    const G = new Float64Array(F * F);
    for (let s = 0; s < n; s++)
      for (let f = 0; f < F; f++) {
        const x = X[s * F + f];
        if (x === 0) continue;
        for (let g = 0; g < F; g++) G[f * F + g] += x * X[s * F + g];
      }
    for (let f = 0; f < F; f++) G[f * F + f] += lambda;
    const XtY = new Float64Array(F * p);
    for (let s = 0; s < n; s++) for (let f = 0; f < F; f++) for (let o = 0; o < p; o++) XtY[f * p + o] += X[s * F + f] * Y[s * p + o];
    W = solve(G, XtY, F, p);
  }
  const maps = Array.from({ length: N }, (_, i) => W.slice(i * d * p, (i + 1) * d * p));
  const bias = Float64Array.from(my);
  for (let f = 0; f < F; f++) for (let o = 0; o < p; o++) bias[o] -= mx[f] * W[f * p + o];
  // Fit quality.
  let ssRes = 0;
  let ssTot = 0;
  for (let s = 0; s < n; s++) {
    for (let o = 0; o < p; o++) {
      let y = bias[o];
      for (let f = 0; f < F; f++) y += (X[s * F + f] + mx[f]) * W[f * p + o];
      ssRes += (y - targets[s][o]) ** 2;
      ssTot += (targets[s][o] - my[o]) ** 2;
    }
  }
  return { maps, bias, d, p, lambda, r2: ssTot > 0 ? 1 - ssRes / ssTot : 1 };
}

/** The text-space vectors of one image's components under an alignment. */
export function alignVectors(al: Alignment, components: Float64Array[]): Float64Array[] {
  const N = components.length;
  if (N !== al.maps.length) throw new InputError(`the alignment has ${al.maps.length} components, the decomposition ${N}`);
  return components.map((c, i) => {
    const y = Float64Array.from(al.bias, (b) => b / N);
    const A = al.maps[i];
    for (let k = 0; k < al.d; k++) {
      const x = c[k];
      if (x === 0) continue;
      for (let o = 0; o < al.p; o++) y[o] += x * A[k * al.p + o];
    }
    return y;
  });
}

/** Solves A X = B (A n x n symmetric positive definite, B n x m) by Cholesky. */
function solve(A: Float64Array, B: Float64Array, n: number, m: number): Float64Array {
  const Lm = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= Lm[i * n + k] * Lm[j * n + k];
      if (i === j) {
        if (s <= 0) throw new InputError('the ridge system is not positive definite (raise lambda)');
        Lm[i * n + i] = Math.sqrt(s);
      } else Lm[i * n + j] = s / Lm[j * n + j];
    }
  }
  const X = Float64Array.from(B);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = X[i * m + c];
      for (let k = 0; k < i; k++) s -= Lm[i * n + k] * X[k * m + c];
      X[i * m + c] = s / Lm[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = X[i * m + c];
      for (let k = i + 1; k < n; k++) s -= Lm[k * n + i] * X[k * m + c];
      X[i * m + c] = s / Lm[i * n + i];
    }
  }
  return X;
}
