/**
 * Pillow's resampling (libImaging/Resample.c, ImagingResample) on 8-bit RGB pixels, so that
 * images resized here equal what Hugging Face's image processors get from PIL's
 * `Image.resize(size, resample)` (reducing_gap None): a separable convolution whose support is
 * scaled by the downscale factor (antialiasing), coefficients normalised and converted to
 * 22-bit fixed point, the horizontal pass first (rounded to 8 bits) and then the vertical one.
 * libvips' kernels differ, hence this file.
 */

/** PIL's resample filter codes (Image.Resampling). */
export const Resample = {
  Nearest: 0,
  Lanczos: 1,
  Bilinear: 2,
  Bicubic: 3,
  Box: 4,
  Hamming: 5,
} as const;

interface Filter {
  support: number;
  f(x: number): number;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

const FILTERS: Record<number, Filter> = {
  [Resample.Box]: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  [Resample.Bilinear]: {
    support: 1,
    f: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  [Resample.Hamming]: {
    support: 1,
    f: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      return (Math.sin(x) / x) * (0.54 + 0.46 * Math.cos(x));
    },
  },
  [Resample.Bicubic]: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  [Resample.Lanczos]: { support: 3, f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

const PRECISION_BITS = 32 - 8 - 2;

interface Coeffs {
  ksize: number;
  /** [out] first input index */
  xmin: Int32Array;
  /** [out] number of inputs */
  xcount: Int32Array;
  /** [out * ksize] fixed-point weights */
  k: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc of Resample.c (box = the whole input). */
function coeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const xmin = new Int32Array(outSize);
  const xcount = new Int32Array(outSize);
  const k = new Int32Array(outSize * ksize);
  const pre = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let lo = Math.trunc(center - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(center + support + 0.5);
    if (hi > inSize) hi = inSize;
    const n = hi - lo;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      const w = filter.f((x + lo - center + 0.5) * ss);
      pre[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < n ? (ww !== 0 ? pre[x] / ww : pre[x]) : 0;
      k[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    xmin[xx] = lo;
    xcount[xx] = n;
  }
  return { ksize, xmin, xcount, k };
}

function clip8(v: number): number {
  if (v >= 1 << PRECISION_BITS << 8) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** An 8-bit image, channels last. */
export interface RgbImage {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** PIL's `Image.resize((width, height), resample)` of an 8-bit image (a copy when the size is unchanged). */
export function resizePil(img: RgbImage, width: number, height: number, resample: number = Resample.Bicubic): RgbImage {
  const C = img.channels;
  if (width === img.width && height === img.height) return { ...img, data: Uint8Array.from(img.data) };
  if (resample === Resample.Nearest) return nearest(img, width, height);
  const filter = FILTERS[resample];
  if (!filter) throw new Error(`unknown PIL resample filter ${resample}`);
  const needH = width !== img.width;
  const needV = height !== img.height;
  const h = coeffs(img.width, width, filter);
  const v = coeffs(img.height, height, filter);
  // Rows the vertical pass reads.
  const yFirst = needV ? v.xmin[0] : 0;
  const yLast = needV ? v.xmin[height - 1] + v.xcount[height - 1] : img.height;
  let src = img.data;
  let srcW = img.width;
  let rowOffset = 0;
  if (needH) {
    const rows = yLast - yFirst;
    const tmp = new Uint8Array(width * rows * C);
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + yFirst) * img.width * C;
      for (let x = 0; x < width; x++) {
        const lo = h.xmin[x];
        const n = h.xcount[x];
        const kb = x * h.ksize;
        for (let c = 0; c < C; c++) {
          let ss = half;
          for (let i = 0; i < n; i++) ss += img.data[inRow + (lo + i) * C + c] * h.k[kb + i];
          tmp[(y * width + x) * C + c] = clip8(ss);
        }
      }
    }
    src = tmp;
    srcW = width;
    rowOffset = yFirst;
  }
  if (!needV) return { width, height, channels: C, data: src };
  const out = new Uint8Array(width * height * C);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < height; y++) {
    const lo = v.xmin[y] - rowOffset;
    const n = v.xcount[y];
    const kb = y * v.ksize;
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < C; c++) {
        let ss = half;
        for (let i = 0; i < n; i++) ss += src[((lo + i) * srcW + x) * C + c] * v.k[kb + i];
        out[(y * width + x) * C + c] = clip8(ss);
      }
    }
  }
  return { width, height, channels: C, data: out };
}

/** PIL's nearest-neighbour resize (ImagingTransform affine with NEAREST, box = whole image). */
function nearest(img: RgbImage, width: number, height: number): RgbImage {
  const C = img.channels;
  const out = new Uint8Array(width * height * C);
  const sx = img.width / width;
  const sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const yy = Math.min(img.height - 1, Math.floor((y + 0.5) * sy));
    for (let x = 0; x < width; x++) {
      const xx = Math.min(img.width - 1, Math.floor((x + 0.5) * sx));
      for (let c = 0; c < C; c++) out[(y * width + x) * C + c] = img.data[(yy * img.width + xx) * C + c];
    }
  }
  return { width, height, channels: C, data: out };
}
