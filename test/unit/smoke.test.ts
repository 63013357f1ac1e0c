import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';

test('onnxruntime-node loads its CPU backend', () => {
  assert.ok(ort.InferenceSession);
});
