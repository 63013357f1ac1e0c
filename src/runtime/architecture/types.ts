/** What discovery finds in a graph: families, blocks, heads, components and hook points. */

export type Family = 'gpt2' | 'llama' | 'bert' | 'clip-text' | 'clip-vision' | 'vit' | 'encoder-decoder' | 'unknown';

/** A weight tensor as shown to the user. */
export interface ParamInfo {
  name: string;
  shape: number[];
  dtype: string;
}

/** A piece of the model (a module subtree): its ONNX nodes and weights. */
export interface Component {
  /** Module path from the exporter's scopes, e.g. `transformer.h.3.attn`. */
  path: string;
  /** ONNX node names behind it. */
  nodes: string[];
  params: ParamInfo[];
  paramCount: number;
}

/** A linear layer (MatMul/Gemm with an initializer weight). */
export interface LinearInfo {
  /** Module path of the projection. */
  path: string;
  /** The MatMul/Gemm node. */
  node: string;
  /** Initializer name of the weight. */
  weight: string;
  bias?: string;
  inFeatures: number;
  outFeatures: number;
  /** True when the stored weight is [out, in] (Gemm transB=1), as torch.nn.Linear. */
  transposed: boolean;
}

export interface AttentionInfo extends Component {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Separate projections, or `qkv` for a fused one (GPT-2's c_attn). */
  q?: LinearInfo;
  k?: LinearInfo;
  v?: LinearInfo;
  qkv?: LinearInfo;
  o?: LinearInfo;
  /** Name of the Softmax node's output (the attention pattern), when there is one. */
  softmax?: string;
  /** The op type of a fused attention kernel (`Attention`, `MultiHeadAttention`, ...). */
  fused?: string;
  cross: boolean;
}

export interface MlpInfo extends Component {
  in: LinearInfo[];
  out?: LinearInfo;
}

export interface BlockInfo extends Component {
  index: number;
  /** `decoder` for the main stack (or the only stack), `encoder` for an encoder-decoder's encoder. */
  stack: 'main' | 'encoder';
  attention?: AttentionInfo;
  crossAttention?: AttentionInfo;
  mlp?: MlpInfo;
  norms: Component[];
}

/** A named place in the graph where activations can be cached or patched. */
export interface HookPoint {
  /** TransformerLens name, e.g. `blocks.3.hook_resid_post`. */
  name: string;
  /** The ONNX value it reads. */
  tensor: string;
  layer?: number;
  /** Shape as the file records it (symbolic dims as strings), when known. */
  shape?: (number | string | undefined)[];
}

/** A module tree from scope names, for models whose roles are not (all) recognised. */
export interface ModuleTree {
  name: string;
  path: string;
  nodeCount: number;
  paramCount: number;
  children: ModuleTree[];
}

export interface Architecture {
  family: Family;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  dModel: number;
  vocabSize?: number;
  embedding?: Component;
  blocks: BlockInfo[];
  encoderBlocks: BlockInfo[];
  finalNorm?: Component;
  unembedding?: Component;
  /** CLIP's text/visual projection or a classifier head. */
  projection?: Component;
  hookPoints: HookPoint[];
  /** Human-readable notes: roles that could not be found, fused ops, unsupported parts. */
  notices: string[];
  modules: ModuleTree;
  paramCount: number;
}
