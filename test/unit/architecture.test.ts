import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModel } from '../../src/runtime/inspect';
import { SHARED_MODELS, expected, fixture, hasFixture } from './helpers/fixtures';

const FAMILY: Record<string, string> = {
  gpt2: 'gpt2',
  'gpt2-external': 'gpt2',
  llama: 'llama',
  bert: 'bert',
  'clip-text': 'clip-text',
  'clip-vision': 'clip-vision',
  vit: 'vit',
};

for (const [name, family] of Object.entries(FAMILY)) {
  test(`${name}: discovered as ${family} with the generator's layers, heads and width`, { skip: !hasFixture(name) && 'fixture not generated' }, () => {
    const cfg = expected(name).config;
    const { arch } = openModel(fixture(name));
    assert.equal(arch.family, family);
    assert.equal(arch.layers, cfg.layers);
    assert.equal(arch.heads, cfg.heads);
    assert.equal(arch.kvHeads, cfg.kv_heads ?? cfg.heads);
    assert.equal(arch.headDim, cfg.d / cfg.heads);
    assert.equal(arch.dModel, cfg.d);
    if (cfg.vocab) assert.equal(arch.vocabSize, cfg.vocab);
    for (const b of arch.blocks) {
      assert.ok(b.attention && b.attention.heads === cfg.heads, `block ${b.index} attention`);
      assert.ok(b.mlp?.out && b.mlp.in.length > 0, `block ${b.index} mlp`);
      assert.ok(b.norms.length >= 2, `block ${b.index} norms`);
    }
    const names = new Set(arch.hookPoints.map((h) => h.name));
    for (let l = 0; l < cfg.layers; l++) {
      for (const h of ['hook_resid_pre', 'hook_resid_post', 'hook_attn_out', 'hook_mlp_out', 'attn.hook_z', 'attn.hook_pattern', 'mlp.hook_post']) assert.ok(names.has(`blocks.${l}.${h}`), `blocks.${l}.${h}`);
    }
    assert.ok(names.has('hook_embed'));
    assert.equal(arch.notices.length, 0, arch.notices.join('; '));
  });
}

test('encdec: encoder and decoder stacks, cross-attention in the decoder', { skip: !hasFixture('encdec') && 'fixture not generated' }, () => {
  const cfg = expected('encdec').config;
  const { arch } = openModel(fixture('encdec'));
  assert.equal(arch.family, 'encoder-decoder');
  assert.ok(arch.encoderBlocks.length > 0 && arch.blocks.length > 0);
  assert.ok(arch.blocks.every((b) => b.crossAttention), 'every decoder block has cross-attention');
  assert.ok(arch.encoderBlocks.every((b) => !b.crossAttention));
  if (cfg?.heads) assert.equal(arch.heads, cfg.heads);
  const names = arch.hookPoints.map((h) => h.name);
  assert.ok(names.includes('blocks.0.cross_attn.hook_pattern') && names.includes('encoder.0.hook_resid_post'), names.join(', '));
});

/** Third-party exports: each opens and is either recognised with these numbers, or reported unknown. */
const THIRD_PARTY: Record<string, { family: string; layers?: number; heads?: number; kvHeads?: number; dModel?: number }> = {
  'stories260K/stories260K.onnx': { family: 'llama', layers: 5, heads: 8, kvHeads: 4, dModel: 64 },
  'ort-transformers/TFBertForQuestionAnswering.onnx': { family: 'bert', layers: 24, heads: 2, dModel: 8 },
  'genai-tiny-random-gpt2-fp32/past.onnx': { family: 'gpt2', layers: 5, heads: 4, dModel: 32 },
  'genai-tiny-random-llama-fp16/model.onnx': { family: 'llama', layers: 2, heads: 1, dModel: 16 },
};

test('third-party exports open: recognised with the right blocks and heads, or reported unknown with a notice', { skip: !fs.existsSync(SHARED_MODELS) && 'shared models absent' }, () => {
  for (const dir of fs.readdirSync(SHARED_MODELS)) {
    const full = path.join(SHARED_MODELS, dir);
    if (!fs.statSync(full).isDirectory()) continue;
    for (const f of fs.readdirSync(full).filter((x) => x.endsWith('.onnx'))) {
      const key = `${dir}/${f}`;
      const { arch } = openModel(path.join(full, f));
      const want = THIRD_PARTY[key];
      if (want) {
        assert.equal(arch.family, want.family, key);
        if (want.layers) assert.equal(arch.layers, want.layers, `${key} layers`);
        if (want.heads) assert.equal(arch.heads, want.heads, `${key} heads`);
        if (want.kvHeads) assert.equal(arch.kvHeads, want.kvHeads, `${key} kv heads`);
        if (want.dModel) assert.equal(arch.dModel, want.dModel, `${key} d_model`);
      } else {
        assert.equal(arch.family, 'unknown', `${key} is only expected to be unknown (got ${arch.family})`);
        assert.ok(arch.notices.some((n) => /Unknown architecture/.test(n)), `${key} says why`);
        assert.ok(arch.modules.children.length > 0 || arch.modules.nodeCount > 0, `${key} has a module tree`);
      }
    }
  }
});
