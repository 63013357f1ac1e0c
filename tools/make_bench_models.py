#!/usr/bin/env python3
"""Make the benchmark models (git-ignored) under bench/models/. Idempotent: a model whose
files are all present is skipped (pass --force to rebuild).

Run with Debian's python3 (torch 1.13, onnx, numpy):

    /usr/bin/python3 tools/make_bench_models.py          # bench/run.mjs calls this itself

Models (random weights, HF GPT-2 module names, exported with torch.onnx.export at opset 17
like tools/make_fixtures.py's GPT-2, inputs input_ids + attention_mask, output logits):

  parse-gpt2   GPT-2-small layout (12 layers, head dim 64) narrowed to d=448 / 7 heads,
               vocab 8192, 1024 positions: about 132 MB of fp32 weights. Used to time
               parsing + architecture discovery.
  trace-gpt2   the causal-trace setting: 8 layers, d=512, 8 heads, vocab 8192, 1024 positions
               (about 121 MB). Also saved as state_dict.pt (the same weights) for the PyTorch
               reference (bench/rome_trace.py), and config.json.

Both share one tokenizer.json: byte-level BPE (GPT-2's pre-tokenizer / decoder) whose merges
make each word of a small English word list a single token; the vocabulary is padded with
never-produced <|unused_N|> entries to exactly 8192 ids (the last id is <|endoftext|>).
The trace prompt "The famous Golden Gate Bridge is located in the beautiful city of" is 12
tokens and its subject "Golden Gate Bridge" 3 tokens (checked here and in bench/run.mjs).
"""
import argparse
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / 'bench' / 'models'
OPSET = 17
VOCAB = 8192
PROMPT = 'The famous Golden Gate Bridge is located in the beautiful city of'
SUBJECT = 'Golden Gate Bridge'

CONFIGS = {
    'parse-gpt2': {'vocab': VOCAB, 'd': 448, 'heads': 7, 'layers': 12, 'n_positions': 1024, 'seed': 2001},
    'trace-gpt2': {'vocab': VOCAB, 'd': 512, 'heads': 8, 'layers': 8, 'n_positions': 1024, 'seed': 2002},
}

torch.set_num_threads(2)
# As in tools/make_fixtures.py: torch 1.13's exporter merges initializers with equal values,
# which would lose parameter names; keep one initializer per parameter.
torch._C._jit_pass_onnx_deduplicate_initializers = lambda graph, params, training: params


# ---------------------------------------------------------------- GPT-2 (HF module names)
# The same module layout as transformers' modeling_gpt2.py (and tools/make_fixtures.py):
# transformer.wte / wpe / h.N.{ln_1, attn.{c_attn, c_proj}, ln_2, mlp.{c_fc, c_proj}} / ln_f,
# lm_head tied to wte. Kept here (not imported) so that the benchmark models do not change
# when the fixture generator does.
class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        n = c['n_positions']
        self.register_buffer('bias', torch.tril(torch.ones((n, n), dtype=torch.bool)).view(1, 1, n, n),
                             persistent=False)
        self.embed_dim, self.num_heads = c['d'], c['heads']
        self.head_dim = self.embed_dim // self.num_heads
        self.c_attn = Conv1D(3 * self.embed_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)

    def _split(self, t):
        return t.view(t.size()[:-1] + (self.num_heads, self.head_dim)).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None):
        q, k, v = self.c_attn(hidden_states).split(self.embed_dim, dim=2)
        q, k, v = self._split(q), self._split(k), self._split(v)
        w = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], v.size(-1) ** 0.5, dtype=q.dtype)
        ql, kl = q.size(-2), k.size(-2)
        causal = self.bias[:, :, kl - ql: kl, :kl]
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
        if attention_mask is not None:
            w = w + attention_mask
        w = nn.functional.softmax(w, dim=-1)
        a = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        a = a.view(a.size()[:-2] + (self.embed_dim,))
        return self.c_proj(a)


class GPT2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = Conv1D(4 * c['d'], c['d'])
        self.c_proj = Conv1D(c['d'], 4 * c['d'])

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c['d'], eps=1e-5)
        self.attn = GPT2Attention(c)
        self.ln_2 = nn.LayerNorm(c['d'], eps=1e-5)
        self.mlp = GPT2MLP(c)

    def forward(self, h, attention_mask=None):
        h = self.attn(self.ln_1(h), attention_mask=attention_mask) + h
        return h + self.mlp(self.ln_2(h))


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c['vocab'], c['d'])
        self.wpe = nn.Embedding(c['n_positions'], c['d'])
        self.h = nn.ModuleList([GPT2Block(c) for _ in range(c['layers'])])
        self.ln_f = nn.LayerNorm(c['d'], eps=1e-5)

    def forward(self, input_ids, attention_mask=None):
        S = input_ids.size(-1)
        if attention_mask is not None:
            attention_mask = attention_mask.view(input_ids.shape[0], -1)[:, None, None, :].to(torch.float32)
            attention_mask = (1.0 - attention_mask) * torch.finfo(torch.float32).min
        pos = torch.arange(0, S, dtype=torch.long).unsqueeze(0)
        h = self.wte(input_ids) + self.wpe(pos)
        for block in self.h:
            h = block(h, attention_mask=attention_mask)
        return self.ln_f(h)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = GPT2Model(c)
        self.lm_head = nn.Linear(c['d'], c['vocab'], bias=False)
        for m in self.modules():  # HF-style init (std 0.02); small random biases / norm offsets
            if isinstance(m, Conv1D):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.normal_(m.bias, std=0.02)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.normal_(m.weight, mean=1.0, std=0.02)
                nn.init.normal_(m.bias, std=0.02)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as HF

    def forward(self, input_ids, attention_mask=None):
        return self.lm_head(self.transformer(input_ids, attention_mask))


# ---------------------------------------------------------------- tokenizer
def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('\xa1'), ord('\xac') + 1)) + \
        list(range(ord('\xae'), ord('\xff') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
WORDS = """the of and to in is was for on that with as by at from his her it an are were be this
which or had not but also has have one two new first their its after who they she he all been
more when time other into over most some would there than city world year years state university
part made between under during only known where team many later well such may film school found
used being about through born back called people these three both same since because each work
family name house several life while group general early high until second national best before
could main game series large known built located beautiful famous bridge tower river river station
golden gate great old north south east west music album song band war church city town village
country region area county district park street road center centre museum library hospital market
The This It In He She A An On At For As By From After When While One Two New First""".split()


def make_tokenizer():
    """Byte-level BPE: every listed word (with and without a leading space) is one token."""
    words = []
    for w in WORDS:
        for v in (w, ' ' + w, w.capitalize(), ' ' + w.capitalize()):
            if v not in words:
                words.append(v)
    # Greedy BPE learning (most frequent pair first, ties: smallest pair) down to one symbol per
    # word: merges learned this way re-tokenise every training word into exactly one token.
    seqs = [[B2U[b] for b in w.encode()] for w in words]
    vocab = [B2U[b] for b in range(256)]
    merges = []
    while True:
        pairs = {}
        for sq in seqs:
            for a, b in zip(sq, sq[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b))
        vocab.append(a + b)
        for k, sq in enumerate(seqs):
            out, i = [], 0
            while i < len(sq):
                if i + 1 < len(sq) and sq[i] == a and sq[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(sq[i])
                    i += 1
            seqs[k] = out
        seqs = [sq for sq in seqs if len(sq) > 1]
    vocab = list(dict.fromkeys(vocab))
    n_pad = VOCAB - 1 - len(vocab)
    assert n_pad >= 0, len(vocab)
    vocab += [f'<|unused_{i}|>' for i in range(n_pad)]
    vocab.append('<|endoftext|>')
    assert len(vocab) == VOCAB and len(set(vocab)) == VOCAB
    ids = {t: i for i, t in enumerate(vocab)}
    tok = {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': VOCAB - 1, 'content': '<|endoftext|>', 'single_word': False, 'lstrip': False,
                          'rstrip': False, 'normalized': True, 'special': True}],
        'normalizer': None,
        'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
        'post_processor': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': False, 'use_regex': True},
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                  'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': ids, 'merges': [a + ' ' + b for a, b in merges]},
    }
    return tok, ids, {m: i for i, m in enumerate(merges)}


def encode(text, ids, ranks):
    """HF BPE on GPT-2's pre-tokenisation (ASCII words), for the token-count check."""
    import re
    out = []
    for w in re.findall(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", text):
        sym = [B2U[b] for b in w.encode()]
        while len(sym) > 1:
            best = min(((ranks.get((sym[i], sym[i + 1]), 1 << 30), i) for i in range(len(sym) - 1)))
            if best[0] == 1 << 30:
                break
            i = best[1]
            sym[i:i + 2] = [sym[i] + sym[i + 1]]
        out += [ids[s] for s in sym]
    return out


# ---------------------------------------------------------------- export
def export(name, cfg, tok_json, force):
    out = MODELS / name
    files = [out / 'model.onnx', out / 'tokenizer.json', out / 'config.json']
    if name == 'trace-gpt2':
        files.append(out / 'state_dict.pt')
    if not force and all(f.exists() for f in files):
        print(f'  {name}: present, skipped')
        return
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg['seed'])
    model = GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, VOCAB - 1, (2, 12))
    mask = torch.ones_like(ids)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), buf, input_names=['input_ids', 'attention_mask'],
                          output_names=['logits'], opset_version=OPSET, do_constant_folding=False,
                          dynamic_axes={'input_ids': {0: 'batch', 1: 'sequence'},
                                        'attention_mask': {0: 'batch', 1: 'sequence'},
                                        'logits': {0: 'batch', 1: 'sequence'}})
    import onnx
    m = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(m)
    (out / 'model.onnx').write_bytes(buf.getvalue())
    if name == 'trace-gpt2':
        torch.save(model.state_dict(), out / 'state_dict.pt')
    (out / 'tokenizer.json').write_text(json.dumps(tok_json, ensure_ascii=False))
    params = sum(p.numel() for p in model.parameters())
    (out / 'config.json').write_text(json.dumps({**cfg, 'params': params, 'prompt': PROMPT, 'subject': SUBJECT}, indent=1))
    mb = (out / 'model.onnx').stat().st_size / 1e6
    print(f'  {name}: {params / 1e6:.1f}M parameters, model.onnx {mb:.1f} MB')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--force', action='store_true', help='rebuild even when present')
    ap.add_argument('names', nargs='*', default=list(CONFIGS))
    a = ap.parse_args()
    tok_json, ids, ranks = make_tokenizer()
    p = encode(PROMPT, ids, ranks)
    s = encode(' ' + SUBJECT, ids, ranks)
    assert len(p) == 12 and len(s) == 3, (len(p), len(s))
    for n in a.names:
        export(n, CONFIGS[n], tok_json, a.force)


if __name__ == '__main__':
    sys.exit(main())
