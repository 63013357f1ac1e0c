/**
 * Decoding PNG and JPEG files (and anything else libvips reads) to 8-bit RGB with sharp, as
 * PIL's `convert('RGB')` does: alpha dropped (not composited), grey replicated, no EXIF
 * rotation (PIL's open does not apply it either).
 */
import * as fs from 'node:fs';
import type SharpType from 'sharp';
import { InputError } from '../feeds';
import type { RgbImage } from './resample';

/** sharp, loaded on first use: loading it costs every CLI command and engine start ~40 ms, and only image methods need it. */
let loaded: typeof SharpType | undefined;
function sharp(...args: Parameters<typeof SharpType>): ReturnType<typeof SharpType> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('sharp') as typeof SharpType;
  return loaded(...args);
}

/** Image file extensions a folder listing picks up. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif', '.tif', '.tiff'];

/** Decodes an image file or buffer to 8-bit RGB. */
export async function decodeImage(source: string | Uint8Array): Promise<RgbImage> {
  if (typeof source === 'string' && !fs.existsSync(source)) throw new InputError(`image ${source} does not exist`);
  try {
    const { data, info } = await sharp(source as never)
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    let px = new Uint8Array(data.buffer, data.byteOffset, data.length);
    if (info.channels === 1) px = Uint8Array.from({ length: px.length * 3 }, (_, i) => px[Math.floor(i / 3)]);
    else if (info.channels !== 3) throw new InputError(`decoded image has ${info.channels} channels`);
    return { width: info.width, height: info.height, channels: 3, data: Uint8Array.from(px) };
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`cannot decode image${typeof source === 'string' ? ` ${source}` : ''}: ${(e as Error).message}`);
  }
}

/** Encodes 8-bit RGB pixels as PNG (tests and synthetic images). */
export async function encodePng(img: RgbImage): Promise<Buffer> {
  return sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: img.channels as 3 } }).png().toBuffer();
}
