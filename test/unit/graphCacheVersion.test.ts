import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { modelKey } from '../../src/runtime/instrument/graphCache';
import { HookedModel } from '../../src/runtime/instrument/hookedModel';
import { fixture, hasFixture } from './helpers/fixtures';

// Rewritten graphs are cached on disk (the extension keeps them in its global storage, across
// updates). A restartable graph built by an earlier rewrite (before suffix runs took whole prefixes,
// or before patched-only nodes stayed in their blocks; a last-position graph without its softmax)
// must not be reused by the current code.
test('gpt2: restartable graphs cached under the key of an earlier rewrite are not reused', { skip: !hasFixture('gpt2') && 'fixture not generated' }, async (t) => {
  const file = fixture('gpt2');
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mechanist-cache-'));
  const { model, graph, arch } = openModel(file);
  const hooked = new HookedModel(model, graph, arch, { cacheDir });
  t.after(() => hooked.dispose());
  const capture = ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_post'];
  // Keys as the earlier rewrite wrote them; their files stand for graphs it built.
  const stale = (spec: object): void => {
    const dir = path.join(cacheDir, modelKey(file));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 20)}.onnx`), 'a graph of an earlier rewrite');
  };
  stale({ capture: [...capture].sort(), patch: [], last: true, restart: true, suffix: true });
  stale({ capture: [...capture].sort(), patch: [], last: true, restart: true });
  // Last-position graphs from before their softmax output (`last: true`).
  stale({ capture: [...capture].sort(), patch: [], last: true });
  await hooked.prepare({ capture, lastTokenLogits: true, suffix: true });
  await hooked.prepare({ capture, lastTokenLogits: true, restart: true });
  const plain = await hooked.prepare({ capture, lastTokenLogits: true });
  assert.ok(plain, 'every session opened from a freshly rewritten graph');
});
