// What a fixture model should show: family, number of blocks and heads. From the
// fixture's expected.json when it has them, else from the CLI (`mechanist inspect --json`).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const LAYER_KEYS = ['layers', 'n_layer', 'n_layers', 'num_layers', 'num_hidden_layers', 'blocks'];
const HEAD_KEYS = ['heads', 'n_head', 'n_heads', 'num_heads', 'num_attention_heads'];

const pick = (o, keys) => keys.map((k) => o[k]).find((v) => typeof v === 'number');

/** @returns {{family: string|undefined, layers: number, heads: number, source: string}} */
export function expectedFor(model, repoRoot) {
  const file = join(dirname(model), 'expected.json');
  if (existsSync(file)) {
    const data = JSON.parse(readFileSync(file, 'utf8'));
    const scopes = [data, ...['config', 'architecture', 'inspect', 'model'].map((k) => data[k]).filter((v) => v && typeof v === 'object')];
    for (const s of scopes) {
      const layers = pick(s, LAYER_KEYS);
      const heads = pick(s, HEAD_KEYS);
      if (layers !== undefined && heads !== undefined) return { family: typeof s.family === 'string' ? s.family : undefined, layers, heads, source: file };
    }
  }
  const out = execFileSync(process.execPath, [join(repoRoot, 'bin', 'mechanist.js'), 'inspect', model, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const info = JSON.parse(out);
  if (typeof info.layers !== 'number' || typeof info.heads !== 'number') throw new Error(`mechanist inspect --json gave no layers/heads for ${model}`);
  return { family: info.family, layers: info.layers, heads: info.heads, source: 'mechanist inspect --json' };
}
