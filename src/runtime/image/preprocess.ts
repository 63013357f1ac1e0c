/**
 * Image preprocessing as Hugging Face's image processors (CLIPImageProcessor,
 * ViTImageProcessor and the like) do it, from the `preprocessor_config.json` beside a model:
 * convert to RGB, resize (shortest edge, or to a fixed height x width) with PIL's resampling,
 * centre crop, rescale (x * rescale_factor, in float64 then float32) and normalise
 * ((x - mean) / std in float32), channels first. An image that already has the resize target's
 * size is not resampled (PIL returns a copy).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../feeds';
import { Resample, resizePil } from './resample';
import type { RgbImage } from './resample';

/** The fields of a preprocessor_config.json that preprocessing reads. */
export interface PreprocessorConfig {
  do_resize?: boolean;
  size?: number | { shortest_edge?: number; longest_edge?: number; height?: number; width?: number };
  resample?: number;
  do_center_crop?: boolean;
  crop_size?: number | { height: number; width: number };
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: number | number[];
  image_std?: number | number[];
  do_convert_rgb?: boolean;
  image_processor_type?: string;
  feature_extractor_type?: string;
}

/** What resizing and cropping come to, in pixels. */
export interface Preprocessing {
  resize?: { shortestEdge: number } | { height: number; width: number };
  resample: number;
  crop?: { height: number; width: number };
  rescale?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
}

const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

function triple(v: number | number[] | undefined, dflt: [number, number, number]): [number, number, number] {
  if (v === undefined) return dflt;
  if (typeof v === 'number') return [v, v, v];
  if (v.length === 1) return [v[0], v[0], v[0]];
  if (v.length !== 3) throw new InputError(`image_mean/image_std must have 3 values, got ${v.length}`);
  return [v[0], v[1], v[2]];
}

/** Resolves a config into concrete steps (HF defaults where a field is absent). */
export function preprocessing(cfg: PreprocessorConfig): Preprocessing {
  const kind = cfg.image_processor_type ?? cfg.feature_extractor_type ?? '';
  const clipLike = /CLIP|BitImage|ConvNext|Siglip/i.test(kind) && !/Siglip/i.test(kind);
  const out: Preprocessing = { resample: cfg.resample ?? (clipLike ? Resample.Bicubic : Resample.Bilinear) };
  if (cfg.do_resize !== false && cfg.size !== undefined) {
    const s = cfg.size;
    if (typeof s === 'number') out.resize = clipLike ? { shortestEdge: s } : { height: s, width: s };
    else if (s.shortest_edge !== undefined) out.resize = { shortestEdge: s.shortest_edge };
    else if (s.height !== undefined && s.width !== undefined) out.resize = { height: s.height, width: s.width };
    else throw new InputError(`unsupported preprocessor size ${JSON.stringify(s)}`);
  }
  if (cfg.do_center_crop && cfg.crop_size !== undefined) {
    const c = cfg.crop_size;
    out.crop = typeof c === 'number' ? { height: c, width: c } : { height: c.height, width: c.width };
  }
  if (cfg.do_rescale !== false) out.rescale = cfg.rescale_factor ?? 1 / 255;
  if (cfg.do_normalize !== false) {
    out.mean = triple(cfg.image_mean, IMAGENET_MEAN);
    out.std = triple(cfg.image_std, IMAGENET_STD);
  }
  return out;
}

/** Reads `preprocessor_config.json` beside a model (or a given file). */
export function loadPreprocessorConfig(modelFile: string, file?: string): PreprocessorConfig {
  const p = file ? path.resolve(file) : path.join(path.dirname(path.resolve(modelFile)), 'preprocessor_config.json');
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8')) as PreprocessorConfig;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InputError(file ? `preprocessor config ${p} does not exist` : `no preprocessor_config.json next to the model (${path.dirname(p)}); pass one with --preprocessor <file>`);
    }
    throw new InputError(`cannot read preprocessor config ${p}: ${(e as Error).message}`);
  }
}

/** HF's get_resize_output_image_size(default_to_square=False): the short side becomes `size`. */
export function shortestEdgeSize(width: number, height: number, size: number): { width: number; height: number } {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? { width: size, height: newLong } : { width: newLong, height: size };
}

/** HF's center_crop (images only, no padding): top = (h - ch) // 2, left = (w - cw) // 2. */
export function centerCrop(img: RgbImage, height: number, width: number): RgbImage {
  if (height > img.height || width > img.width) throw new InputError(`cannot centre-crop a ${img.width}x${img.height} image to ${width}x${height}`);
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  const C = img.channels;
  const data = new Uint8Array(width * height * C);
  for (let y = 0; y < height; y++) data.set(img.data.subarray(((y + top) * img.width + left) * C, ((y + top) * img.width + left + width) * C), y * width * C);
  return { width, height, channels: C, data };
}

/** Resize and crop: the 8-bit image the model sees. */
export function resizeAndCrop(img: RgbImage, p: Preprocessing): RgbImage {
  let x = img;
  if (p.resize) {
    const size = 'shortestEdge' in p.resize ? shortestEdgeSize(x.width, x.height, p.resize.shortestEdge) : p.resize;
    x = resizePil(x, size.width, size.height, p.resample);
  }
  if (p.crop) x = centerCrop(x, p.crop.height, p.crop.width);
  return x;
}

/** pixel_values [3, H, W] (float32) of an 8-bit RGB image. */
export function pixelValues(img: RgbImage, p: Preprocessing): { data: Float32Array; dims: [number, number, number] } {
  const x = resizeAndCrop(img, p);
  if (x.channels !== 3) throw new InputError(`expected an RGB image, got ${x.channels} channels`);
  const H = x.height;
  const W = x.width;
  const out = new Float32Array(3 * H * W);
  const f = Math.fround;
  const mean = p.mean?.map(f);
  const std = p.std?.map(f);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < H * W; i++) {
      let v = x.data[i * 3 + c];
      if (p.rescale !== undefined) v = f(v * p.rescale);
      if (mean && std) v = f(f(v - mean[c]) / std[c]);
      out[c * H * W + i] = v;
    }
  }
  return { data: out, dims: [3, H, W] };
}
