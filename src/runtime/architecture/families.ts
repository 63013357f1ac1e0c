/**
 * Per-family adapters as data: where each role lives in the module tree of a Hugging Face
 * style export. Role paths are relative to a block; each role lists the spellings seen in
 * the wild (HF transformers, llama2.c, onnxruntime-genai's builder).
 */
import type { Family } from './types';

/** Where the parts of an attention layer live, relative to its block. */
export interface AttentionRoles {
  module: string[];
  q?: string[];
  k?: string[];
  v?: string[];
  /** A fused q/k/v projection (GPT-2's c_attn). */
  qkv?: string[];
  o: string[];
}

export interface BlockRoles {
  attention: AttentionRoles;
  cross?: AttentionRoles;
  /** The MLP's own module, when it has one (`mlp`); else its parts are read from `mlpIn`/`mlpOut`. */
  mlp?: string[];
  mlpIn: string[][];
  mlpOut: string[];
  norms: string[][];
}

/** A stack of blocks: a module list whose items match `re` (group 1 = index). */
export interface StackSpec {
  re: RegExp;
  stack: 'main' | 'encoder';
  roles: BlockRoles;
}

export interface FamilySpec {
  family: Family;
  stacks: StackSpec[];
  /** Module paths (absolute, with `{prefix}` = what precedes the stack's list) of each role. */
  embedding: string[];
  finalNorm: string[];
  unembedding: string[];
  projection: string[];
}

const hfSelfAttn: AttentionRoles = {
  module: ['self_attn', 'attn', 'attention'],
  q: ['self_attn.q_proj', 'attn.q_proj', 'attention.wq'],
  k: ['self_attn.k_proj', 'attn.k_proj', 'attention.wk'],
  v: ['self_attn.v_proj', 'attn.v_proj', 'attention.wv'],
  o: ['self_attn.out_proj', 'self_attn.o_proj', 'attn.o_proj', 'attention.wo'],
};

const bertAttn: AttentionRoles = {
  module: ['attention'],
  q: ['attention.self.query', 'attention.attention.query'],
  k: ['attention.self.key', 'attention.attention.key'],
  v: ['attention.self.value', 'attention.attention.value'],
  o: ['attention.output.dense'],
};

/** Families in the order they are tried; the first whose stacks and attention resolve wins. */
export const FAMILIES: FamilySpec[] = [
  {
    family: 'gpt2',
    stacks: [
      {
        re: /^(?:(.*)\.)?h\.(\d+)$/,
        stack: 'main',
        roles: {
          attention: { module: ['attn'], qkv: ['attn.c_attn'], o: ['attn.c_proj'] },
          mlp: ['mlp'],
          mlpIn: [['mlp.c_fc']],
          mlpOut: ['mlp.c_proj'],
          norms: [['ln_1'], ['ln_2']],
        },
      },
    ],
    embedding: ['{prefix}.wte', '{prefix}.wpe'],
    finalNorm: ['{prefix}.ln_f'],
    unembedding: ['lm_head'],
    projection: [],
  },
  {
    family: 'clip-text',
    stacks: [{ re: /^(text_model)\.encoder\.layers\.(\d+)$/, stack: 'main', roles: clipRoles() }],
    embedding: ['text_model.embeddings'],
    finalNorm: ['text_model.final_layer_norm'],
    unembedding: [],
    projection: ['text_projection'],
  },
  {
    family: 'clip-vision',
    stacks: [{ re: /^(vision_model)\.encoder\.layers\.(\d+)$/, stack: 'main', roles: clipRoles() }],
    embedding: ['vision_model.embeddings', 'vision_model.pre_layrnorm'],
    finalNorm: ['vision_model.post_layernorm'],
    unembedding: [],
    projection: ['visual_projection'],
  },
  {
    family: 'vit',
    stacks: [
      {
        re: /^((?:.*\.)?(?:vit|deit))\.encoder\.layer\.(\d+)$/,
        stack: 'main',
        roles: {
          attention: bertAttn,
          mlpIn: [['intermediate.dense']],
          mlpOut: ['output.dense'],
          norms: [['layernorm_before'], ['layernorm_after']],
        },
      },
    ],
    embedding: ['{prefix}.embeddings'],
    finalNorm: ['{prefix}.layernorm'],
    unembedding: ['classifier', 'cls_classifier'],
    projection: [],
  },
  {
    family: 'bert',
    stacks: [
      {
        re: /^(?:(.*)\.)?encoder\.layer\.(\d+)$/,
        stack: 'main',
        roles: {
          attention: bertAttn,
          mlpIn: [['intermediate.dense']],
          mlpOut: ['output.dense'],
          norms: [['attention.output.LayerNorm'], ['output.LayerNorm']],
        },
      },
    ],
    embedding: ['{prefix}.embeddings'],
    finalNorm: [],
    unembedding: ['cls.predictions', 'qa_outputs', 'classifier'],
    projection: ['{prefix}.pooler'],
  },
  {
    family: 'encoder-decoder',
    stacks: [
      // `model.encoder.layers.N` in one graph; `encoder.layers.N` in optimum-style separate files.
      { re: /^(?:(.*)\.)?encoder\.layers\.(\d+)$/, stack: 'encoder', roles: bartRoles(false) },
      { re: /^(?:(.*)\.)?decoder\.layers\.(\d+)$/, stack: 'main', roles: bartRoles(true) },
      { re: /^()encoder\.block\.(\d+)$/, stack: 'encoder', roles: t5Roles(false) },
      { re: /^()decoder\.block\.(\d+)$/, stack: 'main', roles: t5Roles(true) },
    ],
    embedding: ['{prefix}.shared', '{prefix}.encoder', '{prefix}.decoder', '{prefix}.encoder.embed_tokens', '{prefix}.decoder.embed_tokens', '{prefix}.encoder.embed_positions', '{prefix}.decoder.embed_positions', '{prefix}.encoder.layernorm_embedding', '{prefix}.decoder.layernorm_embedding', 'shared'],
    finalNorm: ['{prefix}.decoder.layer_norm', '{prefix}.decoder.final_layer_norm', 'decoder.final_layer_norm'],
    unembedding: ['lm_head'],
    projection: [],
  },
  {
    family: 'llama',
    stacks: [
      {
        re: /^((?:.*\.)?model)\.layers\.(\d+)$/,
        stack: 'main',
        roles: {
          attention: hfSelfAttn,
          mlp: ['mlp', 'feed_forward'],
          mlpIn: [['mlp.gate_proj', 'feed_forward.w1'], ['mlp.up_proj', 'feed_forward.w3']],
          mlpOut: ['mlp.down_proj', 'feed_forward.w2'],
          norms: [['input_layernorm', 'attention_norm'], ['post_attention_layernorm', 'ffn_norm']],
        },
      },
    ],
    embedding: ['{prefix}.embed_tokens'],
    finalNorm: ['{prefix}.norm'],
    unembedding: ['lm_head'],
    projection: [],
  },
];

function clipRoles(): BlockRoles {
  return {
    attention: hfSelfAttn,
    mlp: ['mlp'],
    mlpIn: [['mlp.fc1']],
    mlpOut: ['mlp.fc2'],
    norms: [['layer_norm1'], ['layer_norm2']],
  };
}

function bartRoles(decoder: boolean): BlockRoles {
  return {
    attention: hfSelfAttn,
    cross: decoder
      ? { module: ['encoder_attn'], q: ['encoder_attn.q_proj'], k: ['encoder_attn.k_proj'], v: ['encoder_attn.v_proj'], o: ['encoder_attn.out_proj'] }
      : undefined,
    mlpIn: [['fc1']],
    mlpOut: ['fc2'],
    norms: decoder ? [['self_attn_layer_norm'], ['encoder_attn_layer_norm'], ['final_layer_norm']] : [['self_attn_layer_norm'], ['final_layer_norm']],
  };
}

function t5Roles(decoder: boolean): BlockRoles {
  const ff = decoder ? 'layer.2' : 'layer.1';
  return {
    attention: { module: ['layer.0.SelfAttention'], q: ['layer.0.SelfAttention.q'], k: ['layer.0.SelfAttention.k'], v: ['layer.0.SelfAttention.v'], o: ['layer.0.SelfAttention.o'] },
    cross: decoder
      ? { module: ['layer.1.EncDecAttention'], q: ['layer.1.EncDecAttention.q'], k: ['layer.1.EncDecAttention.k'], v: ['layer.1.EncDecAttention.v'], o: ['layer.1.EncDecAttention.o'] }
      : undefined,
    mlp: [`${ff}.DenseReluDense`],
    mlpIn: [[`${ff}.DenseReluDense.wi`, `${ff}.DenseReluDense.wi_0`], [`${ff}.DenseReluDense.wi_1`]],
    mlpOut: [`${ff}.DenseReluDense.wo`],
    norms: decoder ? [['layer.0.layer_norm'], ['layer.1.layer_norm'], ['layer.2.layer_norm']] : [['layer.0.layer_norm'], ['layer.1.layer_norm']],
  };
}
