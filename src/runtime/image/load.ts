/** Images to `pixel_values`: decode, preprocess as the model's image processor, batch. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../feeds';
import type { HostTensor } from '../tensor';
import { IMAGE_EXTENSIONS, decodeImage } from './decode';
import { loadPreprocessorConfig, pixelValues, preprocessing } from './preprocess';
import type { Preprocessing } from './preprocess';

/** Image files of a folder (sorted by name), or the file itself. */
export function listImages(folderOrFile: string): string[] {
  const p = path.resolve(folderOrFile);
  if (!fs.existsSync(p)) throw new InputError(`${p} does not exist`);
  if (!fs.statSync(p).isDirectory()) return [p];
  const files = fs
    .readdirSync(p)
    .filter((f) => IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase()))
    .sort()
    .map((f) => path.join(p, f));
  if (!files.length) throw new InputError(`no images (${IMAGE_EXTENSIONS.join(', ')}) in ${p}`);
  return files;
}

/** Preprocessing of a model, from its `preprocessor_config.json` (or a given one). */
export function modelPreprocessing(modelFile: string, configFile?: string): Preprocessing {
  return preprocessing(loadPreprocessorConfig(modelFile, configFile));
}

/** pixel_values [B, 3, H, W] float32 of image files or encoded buffers. */
export async function imageBatch(sources: (string | Uint8Array)[], p: Preprocessing): Promise<HostTensor> {
  const rows: Float32Array[] = [];
  let dims: number[] | undefined;
  for (const s of sources) {
    const pv = pixelValues(await decodeImage(s), p);
    if (dims && dims.join() !== pv.dims.join()) throw new InputError(`images preprocess to different sizes: [${dims.join(', ')}] vs [${pv.dims.join(', ')}] (the preprocessor has no fixed crop)`);
    dims = pv.dims;
    rows.push(pv.data);
  }
  if (!dims) throw new InputError('no images');
  const n = rows[0].length;
  const data = new Float32Array(rows.length * n);
  rows.forEach((r, i) => data.set(r, i * n));
  return { type: 'float32', data, dims: [rows.length, ...dims] };
}
