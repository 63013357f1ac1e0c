/**
 * On-disk cache of rewritten graphs: one small file (graph only, weights stay in the original
 * file) per model and hook set, under `<cacheDir>/<model key>/<spec key>.onnx`. The model key
 * hashes the path, size and modification time, so an edited or replaced file misses the cache.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../onnx/model';

function hash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 20);
}

/** Cache key of a model file (path, size, mtime). */
export function modelKey(file: string): string {
  const st = fs.statSync(file);
  return hash(`${path.resolve(file)}|${st.size}|${st.mtimeMs}`);
}

/** Returns the cached bytes for (model, spec), or builds, stores and returns them. */
export function cachedGraph(cacheDir: string | undefined, modelFile: string, specKey: string, build: () => Uint8Array): Uint8Array {
  if (!cacheDir || !modelFile) return build();
  const dir = path.join(cacheDir, modelKey(modelFile));
  const file = path.join(dir, `${hash(specKey)}.onnx`);
  try {
    return fs.readFileSync(file);
  } catch {
    // not cached yet
  }
  const bytes = build();
  try {
    fs.mkdirSync(dir, { recursive: true });
    writeFileAtomic(file, bytes);
  } catch {
    // A read-only or full cache folder only costs the rewrite next time.
  }
  return bytes;
}
