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

/**
 * Third-party exports: each opens and is either recognised with these numbers (and the hook
 * points its kind of graph can offer), or reported unknown with a message naming what did not match.
 */
interface Want {
  family: string;
  layers: number;
  heads: number;
  kvHeads?: number;
  dModel: number;
  vocab?: number;
  /** Fused attention: block-level hook points only. */
  fused?: string;
  /** Norms fused with the residual addition (their sums are offered, unfused when patched; block 0's input may come from EmbedLayerNormalization, which is not). */
  fusedNorm?: boolean;
  cross?: boolean;
}
const THIRD_PARTY: Record<string, Want> = {
  'stories260K/stories260K.onnx': { family: 'llama', layers: 5, heads: 8, kvHeads: 4, dModel: 64 },
  'ort-transformers/TFBertForQuestionAnswering.onnx': { family: 'bert', layers: 24, heads: 2, dModel: 8 },
  'genai-tiny-random-gpt2-fp32/past.onnx': { family: 'gpt2', layers: 5, heads: 4, dModel: 32, vocab: 1000, fused: 'Attention', fusedNorm: true },
  'genai-tiny-random-llama-fp16/model.onnx': { family: 'llama', layers: 2, heads: 1, dModel: 16, vocab: 32000, fused: 'MultiHeadAttention', fusedNorm: true },
  // Anonymous exports, discovered by structure:
  'ort-transformers/gpt2_past.onnx': { family: 'gpt2', layers: 12, heads: 2, dModel: 4, vocab: 20 },
  'ort-transformers/gpt2_one_layer.onnx': { family: 'gpt2', layers: 1, heads: 2, dModel: 4 },
  'ort-transformers/gpt2_megatron.onnx': { family: 'gpt2', layers: 1, heads: 2, dModel: 8 },
  'ort-transformers/bert_toy_optimized.onnx': { family: 'bert', layers: 5, heads: 4, dModel: 32, vocab: 99 },
  'ort-transformers/hf_fp32_decoder_attention_no_past.onnx': { family: 'encoder-decoder', layers: 1, heads: 2, dModel: 10, fused: 'Attention', cross: true, fusedNorm: true },
};
/** What an unrecognised export's notice must name. */
const UNKNOWN: Record<string, RegExp> = {
  'ort-transformers/attention_distilbert.onnx': /residual branches run attention: expected attention, \[cross-attention,\] MLP/,
  'ort-transformers/dummy_t5.onnx': /layers live inside subgraphs of (com\.microsoft\.)?BeamSearch/,
  'cnn/mnist.onnx': /no residual addition found/,
  'cnn/light_resnet50.onnx': /no residual addition found/,
  'cnn/light_densenet121.onnx': /no residual addition found/,
  'cnn/Ultraface_version-RFB-320.onnx': /no residual addition found/,
};

test('third-party exports open: recognised with the right blocks, heads and hook points, or unknown naming what did not match', { skip: !fs.existsSync(SHARED_MODELS) && 'shared models absent' }, () => {
  const seen: string[] = [];
  for (const dir of fs.readdirSync(SHARED_MODELS)) {
    const full = path.join(SHARED_MODELS, dir);
    if (!fs.statSync(full).isDirectory()) continue;
    for (const f of fs.readdirSync(full).filter((x) => x.endsWith('.onnx'))) {
      const key = `${dir}/${f}`;
      seen.push(key);
      const { arch } = openModel(path.join(full, f));
      const want = THIRD_PARTY[key];
      if (want) {
        assert.equal(arch.family, want.family, key);
        assert.equal(arch.layers, want.layers, `${key} layers`);
        assert.equal(arch.heads, want.heads, `${key} heads`);
        assert.equal(arch.kvHeads, want.kvHeads ?? want.heads, `${key} kv heads`);
        assert.equal(arch.dModel, want.dModel, `${key} d_model`);
        if (want.vocab) assert.equal(arch.vocabSize, want.vocab, `${key} vocabulary`);
        assert.equal(arch.headDim * arch.heads, arch.blocks[0].attention!.o!.inFeatures, `${key} heads x head size = the output projection's width`);
        const names = new Set(arch.hookPoints.map((h) => h.name));
        for (const b of arch.blocks) {
          assert.equal(b.attention?.fused, want.fused, `${key} block ${b.index} fused attention`);
          assert.equal(!!b.crossAttention, !!want.cross, `${key} block ${b.index} cross-attention`);
          assert.ok(b.mlp?.out && b.mlp.in.length > 0, `${key} block ${b.index} mlp`);
          // Fused Skip norms' sums are offered (the instrumenter unfuses what it patches); a
          // sum from EmbedLayerNormalization cannot be, and a notice says so.
          const resid = ['hook_resid_pre', 'hook_resid_post'];
          const blockLevel = [...(want.fusedNorm && b.index === 0 ? ['hook_resid_post'] : resid), 'hook_attn_out', 'hook_mlp_out', 'mlp.hook_post', ...(want.cross ? ['hook_cross_attn_out'] : [])];
          if (want.fusedNorm && resid.some((h) => !names.has(`blocks.${b.index}.${h}`))) {
            assert.ok(arch.notices.some((n) => /Residual-stream hook points are not offered where a fused norm that cannot be unfused/.test(n)), `${key}: a notice says why residual hooks are missing`);
          }
          const headLevel = ['attn.hook_pattern', 'attn.hook_z'];
          for (const h of blockLevel) assert.ok(names.has(`blocks.${b.index}.${h}`), `${key}: blocks.${b.index}.${h}`);
          for (const h of headLevel) assert.equal(names.has(`blocks.${b.index}.${h}`), !want.fused, `${key}: blocks.${b.index}.${h} ${want.fused ? 'not offered on a fused kernel' : 'offered'}`);
        }
        if (want.fused) assert.ok(arch.notices.some((n) => n.includes(want.fused!)), `${key}: a notice names ${want.fused}`);
      } else {
        assert.equal(arch.family, 'unknown', `${key} is only expected to be unknown (got ${arch.family})`);
        assert.ok(arch.notices.some((n) => /Unknown architecture/.test(n)), `${key} says why`);
        assert.ok(UNKNOWN[key], `${key}: a new shared model: add what it should open as to THIRD_PARTY or UNKNOWN`);
        assert.ok(arch.notices.some((n) => UNKNOWN[key].test(n)), `${key}: notice names what did not match (${arch.notices.join(' ')})`);
        assert.ok(arch.modules.children.length > 0 || arch.modules.nodeCount > 0, `${key} has a module tree`);
      }
    }
  }
  for (const key of [...Object.keys(THIRD_PARTY), ...Object.keys(UNKNOWN)]) assert.ok(seen.includes(key), `${key} is in ../shared/models`);
});
