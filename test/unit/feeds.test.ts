import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { textFeeds } from '../../src/runtime/feeds';
import { OnnxGraph } from '../../src/runtime/onnx/graph';
import { OnnxModel } from '../../src/runtime/onnx/model';
import { toOrt } from '../../src/runtime/session';
import { SHARED_MODELS } from './helpers/fixtures';

const LLAMA_KV = path.join(SHARED_MODELS, 'genai-tiny-random-llama-fp16/model.onnx');

test('a KV-cache export runs a prompt with an empty past', { skip: !fs.existsSync(LLAMA_KV) && 'shared models absent' }, async () => {
  const graph = OnnxGraph.build(OnnxModel.load(LLAMA_KV));
  const feeds = textFeeds(graph, [
    [1, 5, 9],
    [1, 6, 2],
  ]);
  assert.deepEqual(feeds['past_key_values.0.key'].dims, [2, 1, 0, 16]);
  assert.deepEqual(feeds.attention_mask.dims, [2, 3]);
  const s = await ort.InferenceSession.create(LLAMA_KV, { logSeverityLevel: 3 });
  const out = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)])));
  assert.deepEqual(out.logits.dims, [2, 3, 32000]);
  assert.deepEqual(out['present.0.key'].dims, [2, 1, 3, 16]);
  await s.release();
});
