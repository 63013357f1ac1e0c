import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { decodeImage, encodePng } from '../../src/runtime/image/decode';
import { imageBatch, listImages, modelPreprocessing } from '../../src/runtime/image/load';
import { pixelValues, preprocessing, shortestEdgeSize } from '../../src/runtime/image/preprocess';
import { resizePil } from '../../src/runtime/image/resample';
import type { RgbImage } from '../../src/runtime/image/resample';
import { expected, fixture, flat, hasFixture, maxAbsDiff } from './helpers/fixtures';

// Made by test/unit/data/make_image_reference.py with Pillow (see its docstring).
const REF = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../test/unit/data/imageReference.json'), 'utf8'));

/** The reference script's synthetic image. */
function synthetic(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = (x * 37 + y * 91 + c * 53 + ((x * y) % 17) * 7 + ((Math.floor(x / 3) + Math.floor(y / 4)) % 2) * 100) % 256;
  return { width: w, height: h, channels: 3, data };
}

test("PIL resampling: equal to Pillow's Image.resize for bicubic, bilinear, lanczos, hamming and box, down and up", () => {
  for (const c of REF.resize) {
    const got = resizePil(synthetic(c.width, c.height), c.outWidth, c.outHeight, c.resample);
    assert.equal(got.width, c.outWidth);
    assert.equal(got.height, c.outHeight);
    assert.deepEqual(Array.from(got.data), c.pixels, `${c.width}x${c.height} -> ${c.outWidth}x${c.outHeight} filter ${c.resample}`);
  }
});

test('preprocessing: PNG round trip and the HF image processors (shortest edge + crop, fixed size) equal the reference', async () => {
  for (const p of REF.pipelines) {
    const cfg = JSON.parse(fs.readFileSync(fixture(p.processor, 'preprocessor_config.json'), 'utf8'));
    const png = await encodePng(synthetic(p.width, p.height));
    const img = await decodeImage(png);
    assert.deepEqual(Array.from(img.data), Array.from(synthetic(p.width, p.height).data), 'PNG decodes losslessly');
    const pv = pixelValues(img, preprocessing(cfg));
    assert.deepEqual(pv.dims, p.dims);
    const diff = maxAbsDiff(pv.data, p.pixelValues);
    assert.ok(diff < 2e-6, `${p.processor} ${p.width}x${p.height}: pixel_values differ by ${diff}`);
  }
  assert.deepEqual(shortestEdgeSize(45, 38, 32), { width: 37, height: 32 });
  assert.deepEqual(shortestEdgeSize(30, 52, 32), { width: 32, height: 55 });
});

for (const name of ['clip-vision', 'vit']) {
  test(`${name}: the fixture's images preprocess to its pixel_values`, { skip: !hasFixture(name) && 'fixture not generated' }, async () => {
    const exp = expected(name);
    const run = exp.runs[0];
    const dir = path.dirname(fixture(name));
    const pv = await imageBatch(
      run.images.map((f: string) => path.join(dir, f)),
      modelPreprocessing(fixture(name)),
    );
    assert.deepEqual(pv.dims, run.inputs.pixel_values.dims);
    const diff = maxAbsDiff(pv.data as Float32Array, flat(run.inputs.pixel_values.data));
    assert.ok(diff < 1e-6, `pixel_values differ by ${diff}`);
  });
}

test('images: JPEG decodes, grey and RGBA convert to RGB, folders list images', async () => {
  const src = synthetic(20, 12);
  const jpeg = await sharp(Buffer.from(src.data), { raw: { width: 20, height: 12, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
  const j = await decodeImage(jpeg);
  assert.equal(j.channels, 3);
  assert.equal(j.width, 20);
  const grey = await sharp(Buffer.alloc(6 * 4, 77), { raw: { width: 6, height: 4, channels: 1 } }).png().toBuffer();
  const g = await decodeImage(grey);
  assert.equal(g.data.length, 6 * 4 * 3);
  assert.ok(g.data.every((v) => v === 77));
  const rgba = await sharp(Buffer.alloc(5 * 5 * 4, 200), { raw: { width: 5, height: 5, channels: 4 } }).png().toBuffer();
  const a = await decodeImage(rgba);
  assert.equal(a.data.length, 75);
  if (hasFixture('clip-vision')) assert.equal(listImages(path.join(path.dirname(fixture('clip-vision')), 'images')).length, 4);
  await assert.rejects(decodeImage(Buffer.from('not an image')), /cannot decode/);
});
