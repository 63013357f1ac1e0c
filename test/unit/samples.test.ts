import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES } from './helpers/fixtures';

const SAMPLES = path.resolve(FIXTURES, '../../samples');

test('the bundled sample model is the trained gpt2 fixture (regenerated fixtures must be copied to samples/)', () => {
  for (const f of ['model.onnx', 'tokenizer.json']) {
    assert.ok(fs.readFileSync(path.join(SAMPLES, 'facts-gpt2', f)).equals(fs.readFileSync(path.join(FIXTURES, 'gpt2', f))), f);
  }
});
