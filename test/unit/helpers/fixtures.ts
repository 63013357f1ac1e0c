/** Locating the generated fixtures (test/fixtures) and the shared third-party models. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** test/fixtures (tests run from out/test/unit). */
export const FIXTURES = path.resolve(__dirname, '../../../../test/fixtures');
/** ../shared/models, present on developer machines and in CI. */
export const SHARED_MODELS = path.resolve(__dirname, '../../../../../shared/models');

export function fixture(name: string, file = 'model.onnx'): string {
  return path.join(FIXTURES, name, file);
}

export function hasFixture(name: string, file = 'model.onnx'): boolean {
  return fs.existsSync(fixture(name, file));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function expected(name: string): any {
  return JSON.parse(fs.readFileSync(fixture(name, 'expected.json'), 'utf8'));
}

/** Largest absolute difference between two flat arrays (lengths must match). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Flattens nested number arrays. */
export function flat(x: unknown): number[] {
  return Array.isArray(x) ? x.flatMap(flat) : [x as number];
}
