#!/usr/bin/env python3
"""Make Mechanist's test fixtures: small real-architecture ONNX models with tokenizers and
PyTorch reference results, written to test/fixtures/<name>/.

Run with Debian's python3 (torch 1.13, onnx 1.12, numpy; Pillow for the sample PNGs):

    npm run fixtures                                 # = /usr/bin/python3 tools/make_fixtures.py
    /usr/bin/python3 tools/make_fixtures.py gpt2 llama   # regenerate only these fixtures
    /usr/bin/python3 tools/make_fixtures.py --list

Every fixture is seeded on its own, so regenerating one gives the same bytes as a full run,
and running the script twice gives byte-identical files (check with sha256sum).

Fixtures (each folder: model.onnx, tokenizer.json or preprocessor_config.json, expected.json):
  gpt2          GPT-2 (HF module names, Conv1D via addmm, gelu_new, tied lm_head), byte-level
                BPE; TRAINED on synthetic facts ("Zorvath lives in the city of" -> " Paris")
                to 100% accuracy. References: per-layer activations, attention patterns,
                causal traces (replace + noise; residual/mlp/attn), attention knockout,
                per-head contributions, logit lens.
  llama         LLaMA (RMSNorm, rotary, SwiGLU, 4 query / 2 KV heads, untied lm_head),
                sentencepiece-style BPE with byte fallback; trained on the same facts; same refs.
  bert          BERT encoder + pooler (untrained), WordPiece tokenizer; per-layer refs.
  clip-text     CLIP text tower + text_projection, CLIP BPE (lowercase, </w>, bos/eos=max id);
                trained contrastively with clip-vision on coloured shapes. Refs: per-layer
                activations, closed-form edit of layer 0 out_proj (red circle -> blue circle).
  clip-vision   CLIP vision tower + visual_projection (32x32 px, patch 8); sample PNGs in
                images/; refs: per-layer activations, exact decomposition of image_embeds.
  vit           ViT classifier (trained on the 12 colour x shape classes), ViTImageProcessor.
  encdec        BART-layout encoder-decoder, exported as model.onnx and optimum-style
                encoder.onnx + decoder.onnx; trained to answer "colour:"/"object:"/"size:" about
                the encoder sentence, reading it ONLY through decoder cross-attention layers
                2 and 3 (the other layers' encoder_attn.out_proj are zero and frozen).
                Refs: per-layer activations (self + cross attention), cross-attention
                localisation windows.
  gpt2-external a small untrained GPT-2 saved with external data (model.onnx.data).

test/fixtures/README.md documents every key of expected.json and the exact definitions.
"""
import argparse
import io
import json
import math
import os
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / 'test' / 'fixtures'
OPSET = 17
FMIN = torch.finfo(torch.float32).min

torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)
# torch 1.13's exporter merges initializers with equal values (e.g. all-zero biases), which would
# lose their parameter names; keep one initializer per parameter.
torch._C._jit_pass_onnx_deduplicate_initializers = lambda graph, params, training: params


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- JSON output
def _fnum(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError('non-finite number in expected.json')
    return str(np.float32(x))  # shortest text that reads back as the same float32


def dumps(o, depth=0):
    """Deterministic JSON: insertion-ordered dicts, float32 shortest repr, newlines at the top levels."""
    if isinstance(o, dict):
        items = [json.dumps(str(k)) + ':' + dumps(v, depth + 1) for k, v in o.items()]
        if depth < 2 and items:
            pad = '\n' + ' ' * (depth + 1)
            return '{' + pad + (',' + pad).join(items) + '\n' + ' ' * depth + '}'
        return '{' + ','.join(items) + '}'
    if isinstance(o, torch.Tensor):
        o = o.detach().cpu().numpy()
    if isinstance(o, np.ndarray):
        if o.dtype.kind == 'f':
            o = o.astype(np.float32)
        return dumps(o.tolist(), depth)
    if isinstance(o, (list, tuple)):
        return '[' + ','.join(dumps(v, depth + 1) for v in o) + ']'
    if isinstance(o, (bool, np.bool_)):
        return 'true' if o else 'false'
    if isinstance(o, (int, np.integer)):
        return str(int(o))
    if isinstance(o, (float, np.floating)):
        return _fnum(o)
    if o is None:
        return 'null'
    if isinstance(o, str):
        return json.dumps(o)
    raise TypeError(type(o))


def write_json(path, obj):
    Path(path).write_text(dumps(obj) + '\n', encoding='utf-8')


def write_plain_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')


def tensor_spec(t):
    """A tensor as {type, dims, data (flat, row-major)} for onnxruntime."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    t = np.asarray(t)
    kind = {'int64': 'int64', 'float32': 'float32', 'int32': 'int32', 'bool': 'bool'}[str(t.dtype)]
    return {'type': kind, 'dims': list(t.shape), 'data': t.reshape(-1)}


def f32(t):
    return t.detach().float().cpu().numpy()


# --------------------------------------------------------------------------- ONNX export
def export_onnx(module, args, path, input_names, output_names, dynamic_axes, external=False):
    module.eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=False)
    m = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(m)
    path = Path(path)
    if external:
        data = path.parent / (path.name + '.data')
        if data.exists():
            data.unlink()
        onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + '.data', size_threshold=0)
        onnx.checker.check_model(str(path))
    else:
        path.write_bytes(m.SerializeToString())
    names = {i.name for i in m.graph.initializer}
    params = {n for n, _ in module.named_parameters()}
    missing = sorted(p for p in params if p not in names)
    if missing:
        print(f'    note: {path.name}: parameters not kept under their names: {missing[:4]}...')
    return m


# --------------------------------------------------------------------------- tokenizers
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
BYTE_SYMBOLS = [B2U[b] for b in range(256)]
TEXT_OK = re.compile(r"^[A-Za-z0-9 .,:;'!?-]*$")
# tokenizers.js' ByteLevel regex restricted to ASCII text (\p{L} = [A-Za-z], \p{N} = [0-9])
GPT2_SPLIT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
CLIP_SPLIT_RE = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
CLIP_SPLIT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[A-Za-z]+|[0-9]|[^\sA-Za-z0-9]+")
BERT_SPLIT = re.compile(r"[^\s!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")


def check_text(t):
    if not TEXT_OK.match(t):
        raise ValueError(f'fixture texts are ASCII letters/digits/punctuation only: {t!r}')


def bpe_learn(word_counts, min_freq=2, max_merges=100000):
    """Greedy BPE merge learner: most frequent adjacent pair first (ties: smallest pair)."""
    words = dict(word_counts)
    merges = []
    while len(merges) < max_merges:
        pairs = Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), c = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if c < min_freq:
            break
        merges.append((a, b))
        new = {}
        for w, cnt in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + cnt
        words = new
    return merges


def bpe_apply(symbols, ranks):
    """HF tokenizers' BPE: merge the lowest-ranked adjacent pair (leftmost first), repeat."""
    symbols = list(symbols)
    while len(symbols) > 1:
        best = None
        for i in range(len(symbols) - 1):
            r = ranks.get((symbols[i], symbols[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


class BPETokenizer:
    """Byte-level BPE ('bytelevel': GPT-2 / BART), sentencepiece-style BPE with byte fallback
    ('sp': LLaMA) or CLIP's BPE ('clip'); encode() mirrors tokenizers.js on ASCII text."""

    def __init__(self, mode, texts, min_freq=2, special_front=(), special_back=(), bos=None, eos=None):
        self.mode, self.bos, self.eos = mode, bos, eos
        for t in texts:
            check_text(t)
        counts = Counter()
        for t in texts:
            for w in self.pre_tokenize(t):
                counts[tuple(self.initial_symbols(w))] += 1
        self.merges = bpe_learn(counts, min_freq=min_freq)
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        vocab = list(special_front)
        if mode == 'sp':
            vocab += [f'<0x{b:02X}>' for b in range(256)]
            vocab += sorted({c for t in texts for c in '\u2581' + t.replace(' ', '\u2581')})
        elif mode == 'clip':
            vocab += BYTE_SYMBOLS + [s + '</w>' for s in BYTE_SYMBOLS]
        else:
            vocab += BYTE_SYMBOLS
        for a, b in self.merges:
            if a + b not in vocab:
                vocab.append(a + b)
        vocab += list(special_back)
        assert len(set(vocab)) == len(vocab)
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.inv = vocab
        self.special = list(special_front) + list(special_back)

    def pre_tokenize(self, text):
        if self.mode == 'bytelevel':
            return [''.join(B2U[b] for b in w.encode()) for w in GPT2_SPLIT.findall(text)]
        if self.mode == 'clip':
            text = re.sub(r'\s+', ' ', text).lower()
            return [''.join(B2U[b] for b in w.encode()) for w in CLIP_SPLIT.findall(text)]
        # sp: learning splits into words that start with U+2581; encoding runs on the whole string
        s = '\u2581' + text.replace(' ', '\u2581')
        return ['\u2581' + w for w in s.split('\u2581') if w]

    def initial_symbols(self, word):
        syms = list(word)
        if self.mode == 'clip':
            syms[-1] += '</w>'
        return syms

    def tokens(self, text):
        check_text(text)
        if self.mode == 'sp':
            out = []
            for t in bpe_apply(list('\u2581' + text.replace(' ', '\u2581')), self.ranks):
                out += [t] if t in self.vocab else [f'<0x{b:02X}>' for b in t.encode()]
            return out
        out = []
        for w in self.pre_tokenize(text):
            out += bpe_apply(self.initial_symbols(w), self.ranks)
        return out

    def encode(self, text, add_special_tokens=True):
        ids = [self.vocab[t] for t in self.tokens(text)]
        if add_special_tokens:
            if self.bos is not None:
                ids = [self.vocab[self.bos]] + ids
            if self.eos is not None:
                ids = ids + [self.vocab[self.eos]]
        return ids

    def decode_token(self, i):
        t = self.inv[i]
        if self.mode == 'sp':
            return t.replace('\u2581', ' ')
        if t in self.special:
            return t
        t = t.replace('</w>', ' ')
        u2b = {v: k for k, v in B2U.items()}
        return bytes(u2b[c] for c in t if c in u2b).decode('utf-8', 'replace') + (' ' if t.endswith(' ') else '')

    def added_tokens(self):
        return [{'id': self.vocab[s], 'content': s, 'single_word': False, 'lstrip': False, 'rstrip': False,
                 'normalized': self.mode == 'bytelevel', 'special': True} for s in self.special]

    def to_json(self, post_processor=None):
        model = {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                 'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                 'vocab': self.vocab, 'merges': [a + ' ' + b for a, b in self.merges]}
        if self.mode == 'bytelevel':
            model.update(continuing_subword_prefix='', end_of_word_suffix='')
            normalizer = None
            pre = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
            decoder = {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True}
            post = post_processor or {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': False,
                                      'use_regex': True}
        elif self.mode == 'clip':
            model.update(unk_token=self.eos, continuing_subword_prefix='', end_of_word_suffix='</w>')
            normalizer = {'type': 'Sequence', 'normalizers': [
                {'type': 'NFC'}, {'type': 'Replace', 'pattern': {'Regex': '\\s+'}, 'content': ' '},
                {'type': 'Lowercase'}]}
            pre = {'type': 'Sequence', 'pretokenizers': [
                {'type': 'Split', 'pattern': {'Regex': CLIP_SPLIT_RE}, 'behavior': 'Removed', 'invert': True},
                {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': False}]}
            decoder = {'type': 'BPEDecoder', 'suffix': '</w>'}
            post = {'type': 'RobertaProcessing', 'sep': [self.eos, self.vocab[self.eos]],
                    'cls': [self.bos, self.vocab[self.bos]], 'trim_offsets': False, 'add_prefix_space': False}
        else:
            model.update(unk_token='<unk>', fuse_unk=True, byte_fallback=True)
            normalizer = {'type': 'Sequence', 'normalizers': [
                {'type': 'Prepend', 'prepend': '\u2581'},
                {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '\u2581'}]}
            pre = None
            decoder = {'type': 'Sequence', 'decoders': [
                {'type': 'Replace', 'pattern': {'String': '\u2581'}, 'content': ' '},
                {'type': 'ByteFallback'}, {'type': 'Fuse'},
                {'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0}]}
            b = self.bos
            post = {'type': 'TemplateProcessing',
                    'single': [{'SpecialToken': {'id': b, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}],
                    'pair': [{'SpecialToken': {'id': b, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                             {'SpecialToken': {'id': b, 'type_id': 1}}, {'Sequence': {'id': 'B', 'type_id': 1}}],
                    'special_tokens': {b: {'id': b, 'ids': [self.vocab[b]], 'tokens': [b]}}}
        return {'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': self.added_tokens(),
                'normalizer': normalizer, 'pre_tokenizer': pre, 'post_processor': post, 'decoder': decoder,
                'model': model}


class WordPieceTokenizer:
    """BERT uncased WordPiece (BertNormalizer + BertPreTokenizer + [CLS] A [SEP])."""
    SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']

    def __init__(self, texts, extra_pieces=()):
        words = Counter()
        for t in texts:
            check_text(t)
            words.update(BERT_SPLIT.findall(t.lower()))
        chars = sorted({c for w in words for c in w} | set('abcdefghijklmnopqrstuvwxyz0123456789'))
        vocab = self.SPECIAL + chars + ['##' + c for c in chars if c.isalnum()]
        vocab += [p for p in extra_pieces if p not in vocab]
        vocab += sorted(w for w, c in words.items() if len(w) > 1 and w not in vocab)
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.inv = vocab

    def tokens(self, text):
        check_text(text)
        out = []
        for w in BERT_SPLIT.findall(text.lower()):
            start, pieces = 0, []
            while start < len(w):
                end = len(w)
                cur = None
                while start < end:
                    s = w[start:end] if start == 0 else '##' + w[start:end]
                    if s in self.vocab:
                        cur = s
                        break
                    end -= 1
                if cur is None:
                    pieces = ['[UNK]']
                    break
                pieces.append(cur)
                start = end
            out += pieces
        return out

    def encode(self, text, add_special_tokens=True):
        ids = [self.vocab[t] for t in self.tokens(text)]
        return [self.vocab['[CLS]']] + ids + [self.vocab['[SEP]']] if add_special_tokens else ids

    def to_json(self):
        cls, sep = self.vocab['[CLS]'], self.vocab['[SEP]']
        return {'version': '1.0', 'truncation': None, 'padding': None,
                'added_tokens': [{'id': self.vocab[s], 'content': s, 'single_word': False, 'lstrip': False,
                                  'rstrip': False, 'normalized': False, 'special': True} for s in self.SPECIAL],
                'normalizer': {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True,
                               'strip_accents': None, 'lowercase': True},
                'pre_tokenizer': {'type': 'BertPreTokenizer'},
                'post_processor': {'type': 'TemplateProcessing',
                                   'single': [{'SpecialToken': {'id': '[CLS]', 'type_id': 0}},
                                              {'Sequence': {'id': 'A', 'type_id': 0}},
                                              {'SpecialToken': {'id': '[SEP]', 'type_id': 0}}],
                                   'pair': [{'SpecialToken': {'id': '[CLS]', 'type_id': 0}},
                                            {'Sequence': {'id': 'A', 'type_id': 0}},
                                            {'SpecialToken': {'id': '[SEP]', 'type_id': 0}},
                                            {'Sequence': {'id': 'B', 'type_id': 1}},
                                            {'SpecialToken': {'id': '[SEP]', 'type_id': 1}}],
                                   'special_tokens': {'[CLS]': {'id': '[CLS]', 'ids': [cls], 'tokens': ['[CLS]']},
                                                      '[SEP]': {'id': '[SEP]', 'ids': [sep], 'tokens': ['[SEP]']}}},
                'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
                'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##',
                          'max_input_chars_per_word': 100, 'vocab': self.vocab}}


def encodings(tok, texts, add_special_tokens=True):
    out = []
    for t in texts:
        e = {'text': t, 'ids': tok.encode(t, add_special_tokens)}
        if not add_special_tokens:
            e['addSpecialTokens'] = False
        out.append(e)
    return out


# --------------------------------------------------------------------------- synthetic facts
SYL_A = ['Zor', 'Kel', 'Mar', 'Tav', 'Bri', 'Dor', 'Fen', 'Gal', 'Hol', 'Jor']
SYL_B = ['vath', 'dris', 'nok', 'wyn', 'rel', 'mont', 'quill', 'bar', 'ith', 'usk', 'ane', 'oph']
RELATIONS = [
    ('city', ['{} lives in the city of', 'The home city of {} is'], ['Paris', 'London', 'Rome', 'Tokyo', 'Cairo']),
    ('colour', ['The favourite colour of {} is', '{} likes the colour'], ['red', 'green', 'blue', 'yellow', 'purple']),
    ('job', ['{} works as a', 'The job of {} is'], ['doctor', 'teacher', 'farmer', 'pilot', 'baker']),
    ('instrument', ['{} plays the', 'The instrument of {} is the'], ['piano', 'guitar', 'violin', 'drum', 'flute']),
]
TRACE_RELATION, TRACE_TEMPLATE = 'colour', 'The favourite colour of {} is'


def fact_world():
    """Subjects (20 made-up names, 2-3 tokens in both tokenizers), tokenizers, facts. Deterministic."""
    rng = random.Random(20240601)
    two = [a + b for a in SYL_A for b in SYL_B]
    three = [a + b + c for a in SYL_A for b in SYL_B for c in SYL_B if b != c]
    rng.shuffle(two)
    rng.shuffle(three)
    # candidates: pairs of subjects share their first syllable, so the model must read past it
    cands = []
    for a in SYL_A:
        cands += [n for n in two if n.startswith(a)][:3] + [n for n in three if n.startswith(a)][:2]
    distract = [n for n in two + three[:200] if n not in cands]
    corpus = []
    for rel, templates, attrs in RELATIONS:
        for ti, tpl in enumerate(templates):
            for k, attr in enumerate(attrs):
                for j in range(6):
                    corpus.append(tpl.format(distract[(ti * 31 + k * 7 + j * 13 + len(rel)) % len(distract)]) + ' ' + attr)
    corpus += [d + ' ' + d for d in distract]
    gpt_tok = BPETokenizer('bytelevel', corpus, min_freq=4, special_back=['<|endoftext|>'])
    llama_tok = BPETokenizer('sp', corpus, min_freq=4, special_front=['<unk>', '<s>', '</s>'], bos='<s>')

    def ntok(tok, name, prefix):
        if not prefix:
            return len(tok.tokens(name))
        return len(tok.tokens(prefix + ' ' + name)) - len(tok.tokens(prefix))

    subjects = []
    for a in SYL_A:
        group = [n for n in cands if n.startswith(a)]
        ok = [n for n in group if all(2 <= ntok(t, n, p) <= 3 for t in (gpt_tok, llama_tok) for p in ('', 'The job of'))]
        ok3 = [n for n in ok if ntok(gpt_tok, n, 'The job of') == 3]
        pick = ok3[:1] + [n for n in ok if n not in ok3][:1]
        subjects += pick + [n for n in ok if n not in pick][:2 - len(pick)]
    assert len(subjects) == 20, subjects
    for tok in (gpt_tok, llama_tok):
        for _, templates, attrs in RELATIONS:
            for attr in attrs:
                assert len(tok.tokens(' ' + attr)) == 1 or tok.mode == 'sp', attr
                if tok.mode == 'sp':
                    assert '\u2581' + attr in tok.vocab, attr
    facts = []
    for rel, templates, attrs in RELATIONS:
        perm = list(range(len(subjects)))
        rng.shuffle(perm)
        for si, s in enumerate(subjects):
            facts.append({'subject': s, 'relation': rel, 'attribute': attrs[perm[si] % len(attrs)],
                          'templates': templates})
    return subjects, facts, gpt_tok, llama_tok


def fact_examples(tok, facts):
    """(prompt, prompt_ids, answer_id) for every fact and template."""
    ex = []
    for f in facts:
        for tpl in f['templates']:
            prompt = tpl.format(f['subject'])
            ids = tok.encode(prompt)
            full = tok.encode(prompt + ' ' + f['attribute'])
            assert full[:len(ids)] == ids and len(full) == len(ids) + 1, (prompt, full, ids)
            ex.append({'subject': f['subject'], 'relation': f['relation'], 'template': tpl, 'prompt': prompt,
                       'ids': ids, 'answer': {'id': full[-1], 'text': ' ' + f['attribute']}})
    return ex


def subject_range(tok, template, subject):
    pre = template.split('{}')[0].rstrip(' ')
    text = template.format(subject)
    start = len(tok.encode(pre)) if pre else len(tok.encode(''))
    end = len(tok.encode((pre + ' ' if pre else '') + subject))
    assert tok.encode(text)[:end] == tok.encode((pre + ' ' if pre else '') + subject)
    return start, end


# --------------------------------------------------------------------------- models
# Module names and forward code follow Hugging Face transformers. Every attention module has
# two reference-only slots that are None/False during export and training:
#   score_mask: added to the attention scores right before the softmax (attention knockout)
#   record:     when True, the softmax output is kept in .pattern ([batch, heads, q, k])
class AttnSlots:
    def _slots(self):
        self.score_mask = None
        self.record = False
        self.pattern = None

    def _pre_softmax(self, w):
        return w if self.score_mask is None else w + self.score_mask

    def _post_softmax(self, p, shape=None):
        if self.record:
            self.pattern = (p if shape is None else p.view(*shape)).detach().clone()


def init_weights(model, std):
    """HF-style normal init, except that biases and norm weights get small random offsets
    (HF: zeros / ones) so that every parameter is distinct and biases matter in the references."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, Conv1D)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.02)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, (nn.LayerNorm, LlamaRMSNorm)):
            nn.init.normal_(m.weight, mean=1.0, std=0.02)
            if getattr(m, 'bias', None) is not None:
                nn.init.normal_(m.bias, std=0.02)


# ---- GPT-2 (transformers/models/gpt2/modeling_gpt2.py)
class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        x = x.view(size_out)
        return x


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module, AttnSlots):
    def __init__(self, c):
        super().__init__()
        n = c['n_positions']
        self.register_buffer('bias', torch.tril(torch.ones((n, n), dtype=torch.bool)).view(1, 1, n, n),
                             persistent=False)
        self.embed_dim = c['d']
        self.num_heads = c['heads']
        self.head_dim = self.embed_dim // self.num_heads
        self.split_size = self.embed_dim
        self.c_attn = Conv1D(3 * self.embed_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)
        self.attn_dropout = nn.Dropout(0.0)
        self.resid_dropout = nn.Dropout(0.0)
        self._slots()

    def _attn(self, query, key, value, attention_mask=None):
        attn_weights = torch.matmul(query, key.transpose(-1, -2))
        attn_weights = attn_weights / torch.full([], value.size(-1) ** 0.5, dtype=attn_weights.dtype,
                                                 device=attn_weights.device)
        query_length, key_length = query.size(-2), key.size(-2)
        causal_mask = self.bias[:, :, key_length - query_length: key_length, :key_length]
        mask_value = torch.finfo(attn_weights.dtype).min
        mask_value = torch.full([], mask_value, dtype=attn_weights.dtype, device=attn_weights.device)
        attn_weights = torch.where(causal_mask, attn_weights.to(attn_weights.dtype), mask_value)
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = self._pre_softmax(attn_weights)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        self._post_softmax(attn_weights)
        attn_weights = self.attn_dropout(attn_weights)
        attn_output = torch.matmul(attn_weights, value)
        return attn_output, attn_weights

    def _split_heads(self, tensor, num_heads, attn_head_size):
        new_shape = tensor.size()[:-1] + (num_heads, attn_head_size)
        tensor = tensor.view(new_shape)
        return tensor.permute(0, 2, 1, 3)

    def _merge_heads(self, tensor, num_heads, attn_head_size):
        tensor = tensor.permute(0, 2, 1, 3).contiguous()
        new_shape = tensor.size()[:-2] + (num_heads * attn_head_size,)
        return tensor.view(new_shape)

    def forward(self, hidden_states, attention_mask=None):
        query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)
        query = self._split_heads(query, self.num_heads, self.head_dim)
        key = self._split_heads(key, self.num_heads, self.head_dim)
        value = self._split_heads(value, self.num_heads, self.head_dim)
        attn_output, attn_weights = self._attn(query, key, value, attention_mask)
        attn_output = self._merge_heads(attn_output, self.num_heads, self.head_dim)
        attn_output = self.c_proj(attn_output)
        attn_output = self.resid_dropout(attn_output)
        return attn_output


class GPT2MLP(nn.Module):
    def __init__(self, intermediate_size, c):
        super().__init__()
        self.c_fc = Conv1D(intermediate_size, c['d'])
        self.c_proj = Conv1D(c['d'], intermediate_size)
        self.act = gelu_new
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states):
        hidden_states = self.c_fc(hidden_states)
        hidden_states = self.act(hidden_states)
        hidden_states = self.c_proj(hidden_states)
        hidden_states = self.dropout(hidden_states)
        return hidden_states


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c['d'], eps=1e-5)
        self.attn = GPT2Attention(c)
        self.ln_2 = nn.LayerNorm(c['d'], eps=1e-5)
        self.mlp = GPT2MLP(4 * c['d'], c)

    def forward(self, hidden_states, attention_mask=None):
        residual = hidden_states
        hidden_states = self.ln_1(hidden_states)
        attn_output = self.attn(hidden_states, attention_mask=attention_mask)
        hidden_states = attn_output + residual
        residual = hidden_states
        hidden_states = self.ln_2(hidden_states)
        feed_forward_hidden_states = self.mlp(hidden_states)
        hidden_states = residual + feed_forward_hidden_states
        return hidden_states


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c['vocab'], c['d'])
        self.wpe = nn.Embedding(c['n_positions'], c['d'])
        self.drop = nn.Dropout(0.0)
        self.h = nn.ModuleList([GPT2Block(c) for _ in range(c['layers'])])
        self.ln_f = nn.LayerNorm(c['d'], eps=1e-5)

    def forward(self, input_ids, attention_mask=None):
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        batch_size = input_ids.shape[0]
        position_ids = torch.arange(0, input_shape[-1], dtype=torch.long, device=input_ids.device).unsqueeze(0)
        if attention_mask is not None:
            attention_mask = attention_mask.view(batch_size, -1)
            attention_mask = attention_mask[:, None, None, :]
            attention_mask = attention_mask.to(dtype=torch.float32)
            attention_mask = (1.0 - attention_mask) * torch.finfo(torch.float32).min
        inputs_embeds = self.wte(input_ids)
        position_embeds = self.wpe(position_ids)
        hidden_states = inputs_embeds + position_embeds
        hidden_states = self.drop(hidden_states)
        for block in self.h:
            hidden_states = block(hidden_states, attention_mask=attention_mask)
        hidden_states = self.ln_f(hidden_states)
        return hidden_states


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = GPT2Model(c)
        self.lm_head = nn.Linear(c['d'], c['vocab'], bias=False)
        init_weights(self, c.get('init_std', 0.02))
        self.lm_head.weight = self.transformer.wte.weight  # tied, as HF

    def forward(self, input_ids, attention_mask=None):
        return self.lm_head(self.transformer(input_ids, attention_mask))

    def spec(self):
        t = self.transformer
        return {'blocks': list(t.h), 'attn': [b.attn for b in t.h], 'attn_o': [b.attn.c_proj for b in t.h],
                'mlp': [b.mlp for b in t.h], 'embed': t.wte, 'ln_final': t.ln_f, 'unembed': self.lm_head}


# ---- LLaMA (transformers/models/llama/modeling_llama.py)
class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, dim, base=10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer('inv_freq', inv_freq, persistent=False)

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos()
        sin = emb.sin()
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class LlamaAttention(nn.Module, AttnSlots):
    def __init__(self, c):
        super().__init__()
        self.hidden_size = c['d']
        self.num_heads = c['heads']
        self.head_dim = self.hidden_size // self.num_heads
        self.num_key_value_heads = c['kv_heads']
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.q_proj = nn.Linear(self.hidden_size, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=False)
        self._slots()

    def forward(self, hidden_states, attention_mask=None, position_embeddings=None):
        bsz, q_len, _ = hidden_states.size()
        query_states = self.q_proj(hidden_states)
        key_states = self.k_proj(hidden_states)
        value_states = self.v_proj(hidden_states)
        query_states = query_states.view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        key_states = key_states.view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        value_states = value_states.view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        key_states = repeat_kv(key_states, self.num_key_value_groups)
        value_states = repeat_kv(value_states, self.num_key_value_groups)
        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            causal_mask = attention_mask[:, :, :, : key_states.shape[-2]]
            attn_weights = attn_weights + causal_mask
        attn_weights = self._pre_softmax(attn_weights)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_states.dtype)
        self._post_softmax(attn_weights)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(bsz, q_len, self.hidden_size)
        attn_output = self.o_proj(attn_output)
        return attn_output


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c['d'], c['ffn'], bias=False)
        self.up_proj = nn.Linear(c['d'], c['ffn'], bias=False)
        self.down_proj = nn.Linear(c['ffn'], c['d'], bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = LlamaRMSNorm(c['d'], eps=1e-6)
        self.post_attention_layernorm = LlamaRMSNorm(c['d'], eps=1e-6)

    def forward(self, hidden_states, attention_mask=None, position_embeddings=None):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.self_attn(hidden_states, attention_mask=attention_mask,
                                       position_embeddings=position_embeddings)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = residual + hidden_states
        return hidden_states


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c['vocab'], c['d'])
        self.layers = nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c['layers'])])
        self.norm = LlamaRMSNorm(c['d'], eps=1e-6)
        self.rotary_emb = LlamaRotaryEmbedding(c['d'] // c['heads'])

    def _update_causal_mask(self, attention_mask, input_tensor):
        dtype = input_tensor.dtype
        min_dtype = torch.finfo(dtype).min
        sequence_length = input_tensor.shape[1]
        causal_mask = torch.full((sequence_length, sequence_length), fill_value=min_dtype, dtype=dtype)
        causal_mask = torch.triu(causal_mask, diagonal=1)
        causal_mask = causal_mask[None, None, :, :].expand(input_tensor.shape[0], 1, -1, -1)
        padding_mask = causal_mask + attention_mask[:, None, None, :].to(dtype)
        padding_mask = padding_mask == 0
        causal_mask = causal_mask.masked_fill(padding_mask, min_dtype)
        return causal_mask

    def forward(self, input_ids, attention_mask):
        inputs_embeds = self.embed_tokens(input_ids)
        position_ids = torch.arange(0, inputs_embeds.shape[1], device=inputs_embeds.device).unsqueeze(0)
        causal_mask = self._update_causal_mask(attention_mask, inputs_embeds)
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(hidden_states, attention_mask=causal_mask,
                                          position_embeddings=position_embeddings)
        hidden_states = self.norm(hidden_states)
        return hidden_states


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c['d'], c['vocab'], bias=False)
        init_weights(self, c.get('init_std', 0.02))

    def forward(self, input_ids, attention_mask):
        return self.lm_head(self.model(input_ids, attention_mask))

    def spec(self):
        m = self.model
        return {'blocks': list(m.layers), 'attn': [b.self_attn for b in m.layers],
                'attn_o': [b.self_attn.o_proj for b in m.layers], 'mlp': [b.mlp for b in m.layers],
                'embed': m.embed_tokens, 'ln_final': m.norm, 'unembed': self.lm_head}


# ---- BERT (transformers/models/bert/modeling_bert.py)
class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c['vocab'], c['d'], padding_idx=0)
        self.position_embeddings = nn.Embedding(c['max_pos'], c['d'])
        self.token_type_embeddings = nn.Embedding(2, c['d'])
        self.LayerNorm = nn.LayerNorm(c['d'], eps=1e-12)
        self.dropout = nn.Dropout(0.0)
        self.register_buffer('position_ids', torch.arange(c['max_pos']).expand((1, -1)), persistent=False)

    def forward(self, input_ids, token_type_ids):
        seq_length = input_ids.size()[1]
        position_ids = self.position_ids[:, 0: seq_length]
        inputs_embeds = self.word_embeddings(input_ids)
        token_type_embeddings = self.token_type_embeddings(token_type_ids)
        embeddings = inputs_embeds + token_type_embeddings
        position_embeddings = self.position_embeddings(position_ids)
        embeddings += position_embeddings
        embeddings = self.LayerNorm(embeddings)
        embeddings = self.dropout(embeddings)
        return embeddings


class BertSelfAttention(nn.Module, AttnSlots):
    def __init__(self, c):
        super().__init__()
        self.num_attention_heads = c['heads']
        self.attention_head_size = c['d'] // c['heads']
        self.all_head_size = c['d']
        self.query = nn.Linear(c['d'], c['d'])
        self.key = nn.Linear(c['d'], c['d'])
        self.value = nn.Linear(c['d'], c['d'])
        self.dropout = nn.Dropout(0.0)
        self._slots()

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        x = x.view(new_x_shape)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None):
        mixed_query_layer = self.query(hidden_states)
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(mixed_query_layer)
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            attention_scores = attention_scores + attention_mask
        attention_scores = self._pre_softmax(attention_scores)
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        self._post_softmax(attention_probs)
        attention_probs = self.dropout(attention_probs)
        context_layer = torch.matmul(attention_probs, value_layer)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        new_context_layer_shape = context_layer.size()[:-2] + (self.all_head_size,)
        context_layer = context_layer.view(new_context_layer_shape)
        return context_layer


class BertSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['d'], c['d'])
        self.LayerNorm = nn.LayerNorm(c['d'], eps=1e-12)
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, hidden_states, attention_mask=None):
        self_outputs = self.self(hidden_states, attention_mask)
        attention_output = self.output(self_outputs, hidden_states)
        return attention_output


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['d'], c['ffn'])
        self.intermediate_act_fn = nn.GELU()

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['ffn'], c['d'])
        self.LayerNorm = nn.LayerNorm(c['d'], eps=1e-12)
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, hidden_states, attention_mask=None):
        attention_output = self.attention(hidden_states, attention_mask)
        intermediate_output = self.intermediate(attention_output)
        layer_output = self.output(intermediate_output, attention_output)
        return layer_output


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c['layers'])])

    def forward(self, hidden_states, attention_mask=None):
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['d'], c['d'])
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        first_token_tensor = hidden_states[:, 0]
        pooled_output = self.dense(first_token_tensor)
        pooled_output = self.activation(pooled_output)
        return pooled_output


class BertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c)

    def forward(self, input_ids, attention_mask, token_type_ids):
        extended_attention_mask = attention_mask[:, None, None, :]
        extended_attention_mask = extended_attention_mask.to(dtype=torch.float32)
        extended_attention_mask = (1.0 - extended_attention_mask) * torch.finfo(torch.float32).min
        embedding_output = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        sequence_output = self.encoder(embedding_output, extended_attention_mask)
        pooled_output = self.pooler(sequence_output)
        return sequence_output, pooled_output


class BertForExport(nn.Module):
    """Holds BertModel as `bert` (as BertForPreTraining etc. do) so names start with bert."""

    def __init__(self, c):
        super().__init__()
        self.bert = BertModel(c)
        init_weights(self, c.get('init_std', 0.02))

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids, attention_mask, token_type_ids)

    def spec(self):
        ls = self.bert.encoder.layer
        return {'blocks': list(ls), 'attn': [l.attention.self for l in ls],
                'attn_o': [l.attention.output.dense for l in ls], 'mlp': [l.output.dense for l in ls]}


# ---- CLIP (transformers/models/clip/modeling_clip.py)
def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class CLIPAttention(nn.Module, AttnSlots):
    def __init__(self, c):
        super().__init__()
        self.embed_dim = c['d']
        self.num_heads = c['heads']
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim ** -0.5
        self.dropout = 0.0
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self._slots()

    def _shape(self, tensor, seq_len, bsz):
        return tensor.view(bsz, seq_len, self.num_heads, self.head_dim).transpose(1, 2).contiguous()

    def forward(self, hidden_states, attention_mask=None, causal_attention_mask=None):
        bsz, tgt_len, embed_dim = hidden_states.size()
        query_states = self.q_proj(hidden_states) * self.scale
        key_states = self._shape(self.k_proj(hidden_states), -1, bsz)
        value_states = self._shape(self.v_proj(hidden_states), -1, bsz)
        proj_shape = (bsz * self.num_heads, -1, self.head_dim)
        query_states = self._shape(query_states, tgt_len, bsz).view(*proj_shape)
        key_states = key_states.view(*proj_shape)
        value_states = value_states.view(*proj_shape)
        src_len = key_states.size(1)
        attn_weights = torch.bmm(query_states, key_states.transpose(1, 2))
        if causal_attention_mask is not None:
            attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, src_len) + causal_attention_mask
            attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, src_len)
        if attention_mask is not None:
            attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, src_len) + attention_mask
            attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, src_len)
        attn_weights = self._pre_softmax(attn_weights)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        self._post_softmax(attn_weights, (bsz, self.num_heads, tgt_len, src_len))
        attn_probs = nn.functional.dropout(attn_weights, p=self.dropout, training=self.training)
        attn_output = torch.bmm(attn_probs, value_states)
        attn_output = attn_output.view(bsz, self.num_heads, tgt_len, self.head_dim)
        attn_output = attn_output.transpose(1, 2)
        attn_output = attn_output.reshape(bsz, tgt_len, embed_dim)
        attn_output = self.out_proj(attn_output)
        return attn_output


class CLIPMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.activation_fn = quick_gelu
        self.fc1 = nn.Linear(c['d'], c['ffn'])
        self.fc2 = nn.Linear(c['ffn'], c['d'])

    def forward(self, hidden_states):
        hidden_states = self.fc1(hidden_states)
        hidden_states = self.activation_fn(hidden_states)
        hidden_states = self.fc2(hidden_states)
        return hidden_states


class CLIPEncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = CLIPAttention(c)
        self.layer_norm1 = nn.LayerNorm(c['d'], eps=1e-5)
        self.mlp = CLIPMLP(c)
        self.layer_norm2 = nn.LayerNorm(c['d'], eps=1e-5)

    def forward(self, hidden_states, attention_mask=None, causal_attention_mask=None):
        residual = hidden_states
        hidden_states = self.layer_norm1(hidden_states)
        hidden_states = self.self_attn(hidden_states, attention_mask=attention_mask,
                                       causal_attention_mask=causal_attention_mask)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.layer_norm2(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = residual + hidden_states
        return hidden_states


class CLIPEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(c) for _ in range(c['layers'])])

    def forward(self, inputs_embeds, attention_mask=None, causal_attention_mask=None):
        hidden_states = inputs_embeds
        for encoder_layer in self.layers:
            hidden_states = encoder_layer(hidden_states, attention_mask, causal_attention_mask)
        return hidden_states


def _make_causal_mask(input_ids_shape, dtype):
    bsz, tgt_len = input_ids_shape
    mask = torch.full((tgt_len, tgt_len), torch.finfo(dtype).min)
    mask_cond = torch.arange(mask.size(-1))
    mask.masked_fill_(mask_cond < (mask_cond + 1).view(mask.size(-1), 1), 0)
    mask = mask.to(dtype)
    return mask[None, None, :, :].expand(bsz, 1, tgt_len, tgt_len)


def _expand_mask(mask, dtype, tgt_len=None):
    bsz, src_len = mask.size()
    tgt_len = tgt_len if tgt_len is not None else src_len
    expanded_mask = mask[:, None, None, :].expand(bsz, 1, tgt_len, src_len).to(dtype)
    inverted_mask = 1.0 - expanded_mask
    return inverted_mask.masked_fill(inverted_mask.to(torch.bool), torch.finfo(dtype).min)


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c['vocab'], c['d'])
        self.position_embedding = nn.Embedding(c['max_pos'], c['d'])
        self.register_buffer('position_ids', torch.arange(c['max_pos']).expand((1, -1)), persistent=False)

    def forward(self, input_ids):
        seq_length = input_ids.shape[-1]
        position_ids = self.position_ids[:, :seq_length]
        inputs_embeds = self.token_embedding(input_ids)
        position_embeddings = self.position_embedding(position_ids)
        embeddings = inputs_embeds + position_embeddings
        return embeddings


class CLIPTextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = CLIPTextEmbeddings(c)
        self.encoder = CLIPEncoder(c)
        self.final_layer_norm = nn.LayerNorm(c['d'], eps=1e-5)

    def forward(self, input_ids, attention_mask=None):
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        hidden_states = self.embeddings(input_ids=input_ids)
        causal_attention_mask = _make_causal_mask(input_shape, hidden_states.dtype)
        if attention_mask is not None:
            attention_mask = _expand_mask(attention_mask, hidden_states.dtype)
        last_hidden_state = self.encoder(hidden_states, attention_mask, causal_attention_mask)
        last_hidden_state = self.final_layer_norm(last_hidden_state)
        pooled_output = last_hidden_state[
            torch.arange(last_hidden_state.shape[0], device=last_hidden_state.device),
            input_ids.to(dtype=torch.int, device=last_hidden_state.device).argmax(dim=-1),
        ]
        return last_hidden_state, pooled_output


class CLIPTextModelWithProjection(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.text_model = CLIPTextTransformer(c)
        self.text_projection = nn.Linear(c['d'], c['proj'], bias=False)
        init_weights(self, c.get('init_std', 0.02))

    def forward(self, input_ids, attention_mask):
        last_hidden_state, pooled_output = self.text_model(input_ids, attention_mask)
        text_embeds = self.text_projection(pooled_output)
        return text_embeds, last_hidden_state

    def spec(self):
        ls = self.text_model.encoder.layers
        return {'blocks': list(ls), 'attn': [l.self_attn for l in ls], 'attn_o': [l.self_attn.out_proj for l in ls],
                'mlp': [l.mlp for l in ls]}


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_dim = c['d']
        self.class_embedding = nn.Parameter(torch.randn(self.embed_dim))
        self.patch_embedding = nn.Conv2d(3, self.embed_dim, kernel_size=c['patch'], stride=c['patch'], bias=False)
        self.num_patches = (c['image'] // c['patch']) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Embedding(self.num_positions, self.embed_dim)
        self.register_buffer('position_ids', torch.arange(self.num_positions).expand((1, -1)), persistent=False)

    def forward(self, pixel_values):
        batch_size = pixel_values.shape[0]
        patch_embeds = self.patch_embedding(pixel_values)
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)
        class_embeds = self.class_embedding.expand(batch_size, 1, -1)
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        embeddings = embeddings + self.position_embedding(self.position_ids)
        return embeddings


class CLIPVisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = CLIPVisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c['d'], eps=1e-5)
        self.encoder = CLIPEncoder(c)
        self.post_layernorm = nn.LayerNorm(c['d'], eps=1e-5)

    def forward(self, pixel_values):
        hidden_states = self.embeddings(pixel_values)
        hidden_states = self.pre_layrnorm(hidden_states)
        last_hidden_state = self.encoder(inputs_embeds=hidden_states)
        pooled_output = last_hidden_state[:, 0, :]
        pooled_output = self.post_layernorm(pooled_output)
        return last_hidden_state, pooled_output


class CLIPVisionModelWithProjection(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.vision_model = CLIPVisionTransformer(c)
        self.visual_projection = nn.Linear(c['d'], c['proj'], bias=False)
        init_weights(self, c.get('init_std', 0.02))
        nn.init.normal_(self.vision_model.embeddings.class_embedding, std=c['d'] ** -0.5)

    def forward(self, pixel_values):
        last_hidden_state, pooled_output = self.vision_model(pixel_values)
        image_embeds = self.visual_projection(pooled_output)
        return image_embeds, last_hidden_state

    def spec(self):
        ls = self.vision_model.encoder.layers
        return {'blocks': list(ls), 'attn': [l.self_attn for l in ls], 'attn_o': [l.self_attn.out_proj for l in ls],
                'mlp': [l.mlp for l in ls]}


# ---- ViT (transformers/models/vit/modeling_vit.py)
class ViTPatchEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_patches = (c['image'] // c['patch']) ** 2
        self.projection = nn.Conv2d(3, c['d'], kernel_size=c['patch'], stride=c['patch'])

    def forward(self, pixel_values):
        embeddings = self.projection(pixel_values).flatten(2).transpose(1, 2)
        return embeddings


class ViTEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, c['d']))
        self.patch_embeddings = ViTPatchEmbeddings(c)
        num_patches = self.patch_embeddings.num_patches
        self.position_embeddings = nn.Parameter(torch.randn(1, num_patches + 1, c['d']))
        self.dropout = nn.Dropout(0.0)

    def forward(self, pixel_values):
        batch_size = pixel_values.shape[0]
        embeddings = self.patch_embeddings(pixel_values)
        cls_tokens = self.cls_token.expand(batch_size, -1, -1)
        embeddings = torch.cat((cls_tokens, embeddings), dim=1)
        embeddings = embeddings + self.position_embeddings
        embeddings = self.dropout(embeddings)
        return embeddings


class ViTSelfAttention(BertSelfAttention):
    pass


class ViTSelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['d'], c['d'])
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        return hidden_states


class ViTAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = ViTSelfAttention(c)
        self.output = ViTSelfOutput(c)

    def forward(self, hidden_states):
        self_outputs = self.attention(hidden_states)
        attention_output = self.output(self_outputs, hidden_states)
        return attention_output


class ViTIntermediate(BertIntermediate):
    pass


class ViTOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c['ffn'], c['d'])
        self.dropout = nn.Dropout(0.0)

    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = hidden_states + input_tensor
        return hidden_states


class ViTLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = ViTAttention(c)
        self.intermediate = ViTIntermediate(c)
        self.output = ViTOutput(c)
        self.layernorm_before = nn.LayerNorm(c['d'], eps=1e-12)
        self.layernorm_after = nn.LayerNorm(c['d'], eps=1e-12)

    def forward(self, hidden_states):
        attention_output = self.attention(self.layernorm_before(hidden_states))
        hidden_states = attention_output + hidden_states
        layer_output = self.layernorm_after(hidden_states)
        layer_output = self.intermediate(layer_output)
        layer_output = self.output(layer_output, hidden_states)
        return layer_output


class ViTEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([ViTLayer(c) for _ in range(c['layers'])])

    def forward(self, hidden_states):
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states)
        return hidden_states


class ViTModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = ViTEmbeddings(c)
        self.encoder = ViTEncoder(c)
        self.layernorm = nn.LayerNorm(c['d'], eps=1e-12)

    def forward(self, pixel_values):
        embedding_output = self.embeddings(pixel_values)
        sequence_output = self.encoder(embedding_output)
        sequence_output = self.layernorm(sequence_output)
        return sequence_output


class ViTForImageClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.vit = ViTModel(c)
        self.classifier = nn.Linear(c['d'], c['labels'])
        init_weights(self, c.get('init_std', 0.02))
        nn.init.trunc_normal_(self.vit.embeddings.cls_token, std=0.02)
        nn.init.trunc_normal_(self.vit.embeddings.position_embeddings, std=0.02)

    def forward(self, pixel_values):
        sequence_output = self.vit(pixel_values)
        logits = self.classifier(sequence_output[:, 0, :])
        return logits

    def spec(self):
        ls = self.vit.encoder.layer
        return {'blocks': list(ls), 'attn': [l.attention.attention for l in ls],
                'attn_o': [l.attention.output.dense for l in ls], 'mlp': [l.output.dense for l in ls]}


# ---- BART (transformers/models/bart/modeling_bart.py)
class BartLearnedPositionalEmbedding(nn.Embedding):
    def __init__(self, num_embeddings, embedding_dim):
        self.offset = 2
        super().__init__(num_embeddings + self.offset, embedding_dim)

    def forward(self, input_ids, past_key_values_length=0):
        bsz, seq_len = input_ids.shape[:2]
        positions = torch.arange(past_key_values_length, past_key_values_length + seq_len, dtype=torch.long,
                                 device=self.weight.device).expand(bsz, -1)
        return super().forward(positions + self.offset)


class BartAttention(nn.Module, AttnSlots):
    def __init__(self, c):
        super().__init__()
        self.embed_dim = c['d']
        self.num_heads = c['heads']
        self.head_dim = self.embed_dim // self.num_heads
        self.scaling = self.head_dim ** -0.5
        self.dropout = 0.0
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self._slots()

    def _shape(self, tensor, seq_len, bsz):
        return tensor.view(bsz, seq_len, self.num_heads, self.head_dim).transpose(1, 2).contiguous()

    def forward(self, hidden_states, key_value_states=None, attention_mask=None):
        is_cross_attention = key_value_states is not None
        bsz, tgt_len, _ = hidden_states.size()
        query_states = self.q_proj(hidden_states) * self.scaling
        if is_cross_attention:
            key_states = self._shape(self.k_proj(key_value_states), -1, bsz)
            value_states = self._shape(self.v_proj(key_value_states), -1, bsz)
        else:
            key_states = self._shape(self.k_proj(hidden_states), -1, bsz)
            value_states = self._shape(self.v_proj(hidden_states), -1, bsz)
        proj_shape = (bsz * self.num_heads, -1, self.head_dim)
        query_states = self._shape(query_states, tgt_len, bsz).view(*proj_shape)
        key_states = key_states.reshape(*proj_shape)
        value_states = value_states.reshape(*proj_shape)
        src_len = key_states.size(1)
        attn_weights = torch.bmm(query_states, key_states.transpose(1, 2))
        if attention_mask is not None:
            attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, src_len) + attention_mask
            attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, src_len)
        attn_weights = self._pre_softmax(attn_weights)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        self._post_softmax(attn_weights, (bsz, self.num_heads, tgt_len, src_len))
        attn_probs = nn.functional.dropout(attn_weights, p=self.dropout, training=self.training)
        attn_output = torch.bmm(attn_probs, value_states)
        attn_output = attn_output.view(bsz, self.num_heads, tgt_len, self.head_dim)
        attn_output = attn_output.transpose(1, 2)
        attn_output = attn_output.reshape(bsz, tgt_len, self.embed_dim)
        attn_output = self.out_proj(attn_output)
        return attn_output


class BartEncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_dim = c['d']
        self.self_attn = BartAttention(c)
        self.self_attn_layer_norm = nn.LayerNorm(self.embed_dim)
        self.activation_fn = nn.functional.gelu
        self.fc1 = nn.Linear(self.embed_dim, c['ffn'])
        self.fc2 = nn.Linear(c['ffn'], self.embed_dim)
        self.final_layer_norm = nn.LayerNorm(self.embed_dim)

    def forward(self, hidden_states, attention_mask):
        residual = hidden_states
        hidden_states = self.self_attn(hidden_states, attention_mask=attention_mask)
        hidden_states = residual + hidden_states
        hidden_states = self.self_attn_layer_norm(hidden_states)
        residual = hidden_states
        hidden_states = self.activation_fn(self.fc1(hidden_states))
        hidden_states = self.fc2(hidden_states)
        hidden_states = residual + hidden_states
        hidden_states = self.final_layer_norm(hidden_states)
        return hidden_states


class BartDecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_dim = c['d']
        self.self_attn = BartAttention(c)
        self.activation_fn = nn.functional.gelu
        self.self_attn_layer_norm = nn.LayerNorm(self.embed_dim)
        self.encoder_attn = BartAttention(c)
        self.encoder_attn_layer_norm = nn.LayerNorm(self.embed_dim)
        self.fc1 = nn.Linear(self.embed_dim, c['ffn'])
        self.fc2 = nn.Linear(c['ffn'], self.embed_dim)
        self.final_layer_norm = nn.LayerNorm(self.embed_dim)

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None):
        residual = hidden_states
        hidden_states = self.self_attn(hidden_states, attention_mask=attention_mask)
        hidden_states = residual + hidden_states
        hidden_states = self.self_attn_layer_norm(hidden_states)
        residual = hidden_states
        hidden_states = self.encoder_attn(hidden_states, key_value_states=encoder_hidden_states,
                                          attention_mask=encoder_attention_mask)
        hidden_states = residual + hidden_states
        hidden_states = self.encoder_attn_layer_norm(hidden_states)
        residual = hidden_states
        hidden_states = self.activation_fn(self.fc1(hidden_states))
        hidden_states = self.fc2(hidden_states)
        hidden_states = residual + hidden_states
        hidden_states = self.final_layer_norm(hidden_states)
        return hidden_states


class BartEncoder(nn.Module):
    def __init__(self, c, embed_tokens):
        super().__init__()
        self.embed_scale = 1.0
        self.embed_tokens = embed_tokens
        self.embed_positions = BartLearnedPositionalEmbedding(c['max_pos'], c['d'])
        self.layers = nn.ModuleList([BartEncoderLayer(c) for _ in range(c['enc_layers'])])
        self.layernorm_embedding = nn.LayerNorm(c['d'])

    def forward(self, input_ids, attention_mask):
        inputs_embeds = self.embed_tokens(input_ids) * self.embed_scale
        embed_pos = self.embed_positions(input_ids)
        hidden_states = inputs_embeds + embed_pos
        hidden_states = self.layernorm_embedding(hidden_states)
        attention_mask = _expand_mask(attention_mask, inputs_embeds.dtype)
        for encoder_layer in self.layers:
            hidden_states = encoder_layer(hidden_states, attention_mask)
        return hidden_states


class BartDecoder(nn.Module):
    def __init__(self, c, embed_tokens):
        super().__init__()
        self.embed_scale = 1.0
        self.embed_tokens = embed_tokens
        self.embed_positions = BartLearnedPositionalEmbedding(c['max_pos'], c['d'])
        self.layers = nn.ModuleList([BartDecoderLayer(c) for _ in range(c['dec_layers'])])
        self.layernorm_embedding = nn.LayerNorm(c['d'])

    def forward(self, input_ids, encoder_hidden_states, encoder_attention_mask):
        input_shape = input_ids.size()
        inputs_embeds = self.embed_tokens(input_ids) * self.embed_scale
        attention_mask = _make_causal_mask(input_shape, inputs_embeds.dtype)
        encoder_attention_mask = _expand_mask(encoder_attention_mask, inputs_embeds.dtype, tgt_len=input_shape[-1])
        positions = self.embed_positions(input_ids)
        hidden_states = inputs_embeds + positions
        hidden_states = self.layernorm_embedding(hidden_states)
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(hidden_states, attention_mask=attention_mask,
                                          encoder_hidden_states=encoder_hidden_states,
                                          encoder_attention_mask=encoder_attention_mask)
        return hidden_states


class BartModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.shared = nn.Embedding(c['vocab'], c['d'], padding_idx=1)
        self.encoder = BartEncoder(c, self.shared)
        self.decoder = BartDecoder(c, self.shared)

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        encoder_hidden_states = self.encoder(input_ids, attention_mask)
        return self.decoder(decoder_input_ids, encoder_hidden_states, attention_mask)


class BartForConditionalGeneration(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = BartModel(c)
        self.register_buffer('final_logits_bias', torch.zeros((1, c['vocab'])))
        self.lm_head = nn.Linear(c['d'], c['vocab'], bias=False)
        init_weights(self, c.get('init_std', 0.02))
        self.lm_head.weight = self.model.shared.weight  # tied, as HF

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        outputs = self.model(input_ids, attention_mask, decoder_input_ids)
        lm_logits = self.lm_head(outputs)
        lm_logits = lm_logits + self.final_logits_bias
        return lm_logits

    def spec(self, part):
        if part == 'encoder':
            ls = self.model.encoder.layers
            return {'blocks': list(ls), 'attn': [l.self_attn for l in ls], 'attn_o': [l.self_attn.out_proj for l in ls],
                    'mlp': [l.fc2 for l in ls]}
        ls = self.model.decoder.layers
        return {'blocks': list(ls), 'attn': [l.self_attn for l in ls], 'attn_o': [l.self_attn.out_proj for l in ls],
                'mlp': [l.fc2 for l in ls], 'cross_attn': [l.encoder_attn for l in ls],
                'cross_attn_o': [l.encoder_attn.out_proj for l in ls]}


class _BartPart(nn.Module):
    """`model` of the optimum-style exports: holds `shared` and one of `encoder` / `decoder`, so the
    exporter's scope names (/model/decoder/layers.0/...) match the parameter names."""

    def __init__(self, full, part):
        super().__init__()
        self.shared = full.model.shared
        setattr(self, part, getattr(full.model, part))
        self.part = part

    def forward(self, *args):
        return getattr(self, self.part)(*args)


class BartEncoderExport(nn.Module):
    """optimum-style encoder_model: input_ids, attention_mask -> last_hidden_state."""

    def __init__(self, full):
        super().__init__()
        self.model = _BartPart(full, 'encoder')

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids, attention_mask)


class BartDecoderExport(nn.Module):
    """optimum-style decoder_model: input_ids, encoder_hidden_states, encoder_attention_mask -> logits."""

    def __init__(self, full):
        super().__init__()
        self.model = _BartPart(full, 'decoder')
        self.lm_head = full.lm_head
        self.register_buffer('final_logits_bias', full.final_logits_bias.clone())

    def forward(self, input_ids, encoder_hidden_states, encoder_attention_mask):
        h = self.model(input_ids, encoder_hidden_states, encoder_attention_mask)
        return self.lm_head(h) + self.final_logits_bias


# --------------------------------------------------------------------------- references (PyTorch hooks)
class Hooks:
    """Context manager: forward hooks [(module, fn)] and forward pre-hooks [(module, fn)]."""

    def __init__(self, fwd=(), pre=()):
        self.fwd, self.pre, self.handles = list(fwd), list(pre), []

    def __enter__(self):
        self.handles = [m.register_forward_hook(f) for m, f in self.fwd] + \
                       [m.register_forward_pre_hook(f) for m, f in self.pre]
        return self

    def __exit__(self, *a):
        for h in self.handles:
            h.remove()


def capture(spec, run, keys=('attn', 'cross_attn')):
    """Runs run() once and captures per layer resid_pre (block input), resid_post (block output),
    attn_out (attention output projection incl. bias), mlp_out, the attention input (value
    projection input) and the softmax patterns. Returns dict of lists of tensors (full batch)."""
    L = len(spec['blocks'])
    st = {k: [None] * L for k in ('resid_pre', 'resid_post', 'attn_out', 'mlp_out', 'attn_in', 'attn_z',
                                  'cross_attn_out')}

    def put(key, i, v):
        st[key][i] = v.detach().clone()

    fwd, pre = [], []
    for i in range(L):
        pre.append((spec['blocks'][i], lambda m, inp, i=i: put('resid_pre', i, inp[0])))
        fwd.append((spec['blocks'][i], lambda m, inp, out, i=i: put('resid_post', i, out)))
        fwd.append((spec['attn_o'][i], lambda m, inp, out, i=i: put('attn_out', i, out)))
        fwd.append((spec['attn_o'][i], lambda m, inp, out, i=i: put('attn_z', i, inp[0])))
        fwd.append((spec['mlp'][i], lambda m, inp, out, i=i: put('mlp_out', i, out)))
        pre.append((spec['attn'][i], lambda m, inp, i=i: put('attn_in', i, inp[0])))
        if 'cross_attn_o' in spec:
            fwd.append((spec['cross_attn_o'][i], lambda m, inp, out, i=i: put('cross_attn_out', i, out)))
    mods = [a for k in keys if k in spec for a in spec[k]]
    for a in mods:
        a.record = True
    try:
        with Hooks(fwd, pre), torch.no_grad():
            out = run()
    finally:
        for a in mods:
            a.record = False
    st['pattern'] = [a.pattern for a in spec['attn']]
    if 'cross_attn' in spec:
        st['cross_pattern'] = [a.pattern for a in spec['cross_attn']]
    for a in mods:
        a.pattern = None
    st['output'] = out
    return st


def layer_refs(st, row=0, cross=False):
    r = {k: [f32(t[row]) for t in st[k]] for k in ('resid_pre', 'resid_post', 'attn_out', 'mlp_out')}
    r['pattern'] = [f32(p[row]) for p in st['pattern']]
    if cross:
        r['cross_attn_out'] = [f32(t[row]) for t in st['cross_attn_out']]
        r['cross_pattern'] = [f32(p[row]) for p in st['cross_pattern']]
    return r


def lm_last_probs(model, batch, fwd=()):
    with Hooks(fwd), torch.no_grad():
        logits = model(batch, torch.ones_like(batch))
    return torch.softmax(logits[:, -1, :], dim=-1)


def causal_trace(model, spec, ids, subj, answer, corruption, kind, window):
    """ROME experiments/causal_trace.py: row 0 clean, rows 1.. corrupted; restore clean states."""
    L, T = len(spec['blocks']), len(ids)
    s, e = subj
    fwd = []
    if corruption['type'] == 'replace':
        bad = list(ids)
        bad[s:e] = corruption['subjectIds']
        batch = torch.tensor([ids, bad])
    else:
        noise = torch.tensor(np.asarray(corruption['noise'], dtype=np.float32))
        batch = torch.tensor([ids] * (1 + noise.shape[0]))

        def add_noise(m, inp, out):
            out = out.clone()
            out[1:, s:e] += noise
            return out
        fwd.append((spec['embed'], add_noise))

    def restore(t):
        def fn(m, inp, out):
            out = out.clone()
            out[1:, t] = out[0, t]
            return out
        return fn

    high = float(lm_last_probs(model, torch.tensor([ids]))[0, answer])
    low = float(lm_last_probs(model, batch, fwd)[1:].mean(0)[answer])
    scores = []
    for l in range(L):
        if kind == 'residual':
            mods = [spec['blocks'][l]]
        else:
            lo, hi = max(0, l - window // 2), min(L, l - (-window // 2))
            mods = [spec['mlp' if kind == 'mlp' else 'attn_o'][j] for j in range(lo, hi)]
        row = []
        for t in range(T):
            p = lm_last_probs(model, batch, fwd + [(m, restore(t)) for m in mods])[1:].mean(0)[answer]
            row.append(float(p))
        scores.append(row)
    return high, low, scores


def knockout(model, spec, ids, subj, answer, k):
    L, T = len(spec['blocks']), len(ids)
    batch = torch.tensor([ids])
    p_clean = float(lm_last_probs(model, batch)[0, answer])
    mask = torch.zeros(1, 1, T, T)
    mask[0, 0, T - 1, subj[0]:subj[1]] = FMIN
    out = []
    for l in range(L):
        lo, hi = max(0, l - k // 2), min(L, l + k - k // 2)
        for j in range(lo, hi):
            spec['attn'][j].score_mask = mask
        try:
            p = float(lm_last_probs(model, batch)[0, answer])
        finally:
            for j in range(lo, hi):
                spec['attn'][j].score_mask = None
        out.append({'layer': l, 'layers': [lo, hi], 'p': p, 'relativeChange': (p - p_clean) / p_clean})
    return {'k': k, 'target': T - 1, 'sources': list(subj), 'maskValue': 'float32 min (-3.4028235e38)',
            'pClean': p_clean, 'results': out}


def contributions(st, spec, heads_fn):
    """|| A[h][last][j] * (x_j W_V^h + b_V^h) W_O^h || per layer, head, source; b_O separately."""
    L = len(spec['blocks'])
    res, bias_norm = [], []
    for l in range(L):
        x = st['attn_in'][l][0].double()             # [T, d] value projection input
        A = st['pattern'][l][0].double()             # [H, T, T]
        v_heads, wo_heads, b_o = heads_fn(l)         # [H, T, dh] from x, [H, dh, d], [d] or None
        v = v_heads(x)
        T = x.shape[0]
        vecs = A[:, T - 1, :, None, None] * v[:, :, None, :] @ wo_heads[:, None]   # [H, T, 1, d]
        vecs = vecs[:, :, 0, :]
        total = vecs.sum((0, 1)) + (b_o.double() if b_o is not None else 0)
        err = (total - st['attn_out'][l][0, T - 1].double()).abs().max().item()
        assert err < 1e-4, err
        res.append(vecs.norm(dim=-1).float().numpy())
        bias_norm.append(float(b_o.norm()) if b_o is not None else 0.0)
    return res, bias_norm


def gpt2_heads(model):
    def fn(l):
        a = model.transformer.h[l].attn
        H, dh, d = a.num_heads, a.head_dim, a.embed_dim
        Wv = a.c_attn.weight[:, 2 * d:].detach().double()
        bv = a.c_attn.bias[2 * d:].detach().double()
        Wo = a.c_proj.weight.detach().double().view(H, dh, d)
        return (lambda x: (x @ Wv + bv).view(-1, H, dh).transpose(0, 1)), Wo, a.c_proj.bias.detach()
    return fn


def llama_heads(model):
    def fn(l):
        a = model.model.layers[l].self_attn
        H, dh, d, kv = a.num_heads, a.head_dim, a.hidden_size, a.num_key_value_heads
        Wv = a.v_proj.weight.detach().double()       # [kv*dh, d]
        Wo = a.o_proj.weight.detach().double().t().reshape(H, dh, d)

        def v(x):
            vv = (x @ Wv.t()).view(-1, kv, dh).transpose(0, 1)   # [kv, T, dh]
            return vv.repeat_interleave(H // kv, dim=0)
        return v, Wo, None
    return fn


def logit_lens(st, spec, answer, k=5):
    p_ans, top = [], []
    with torch.no_grad():
        for r in st['resid_post']:
            probs = torch.softmax(spec['unembed'](spec['ln_final'](r[0])), dim=-1)
            p_ans.append(f32(probs[:, answer]))
            tp, ti = probs.topk(k, dim=-1)
            top.append([{'ids': ti[t].tolist(), 'probs': f32(tp[t])} for t in range(probs.shape[0])])
    return {'answer': answer, 'pAnswer': p_ans, 'topK': k, 'top': top}


# --------------------------------------------------------------------------- training helpers
def pad_batch(seqs, pad_id):
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def train_facts(model, examples, pad_id, max_steps=4000, lr=3e-3):
    """Full-batch next-token training on 'prompt answer' until every fact's answer is top-1
    with probability > 0.5 on average > 0.9."""
    seqs = [e['ids'] + [e['answer']['id']] for e in examples]
    ids, mask = pad_batch(seqs, pad_id)
    labels = ids[:, 1:].clone()
    labels[mask[:, 1:] == 0] = -100
    pos = torch.tensor([len(e['ids']) - 1 for e in examples])
    ans = torch.tensor([e['answer']['id'] for e in examples])
    rows = torch.arange(len(examples))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step, acc, pm = 0, 0.0, 0.0
    for step in range(1, max_steps + 1):
        model.train()
        logits = model(ids, mask)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        loss = loss + F.cross_entropy(logits[rows, pos], ans)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            acc, pm, pmin = eval_facts(model, examples, pad_id)
            if acc == 1.0 and pm > 0.9 and pmin > 0.5:
                break
    model.eval()
    acc, pm, pmin = eval_facts(model, examples, pad_id)
    return {'steps': step, 'optimizer': f'Adam lr={lr}, full batch', 'factAccuracy': acc,
            'meanAnswerProb': pm, 'minAnswerProb': pmin, 'examples': len(examples)}


def eval_facts(model, examples, pad_id):
    model.eval()
    ids, mask = pad_batch([e['ids'] for e in examples], pad_id)
    with torch.no_grad():
        logits = model(ids, mask)
    pos = torch.tensor([len(e['ids']) - 1 for e in examples])
    last = logits[torch.arange(len(examples)), pos]
    ans = torch.tensor([e['answer']['id'] for e in examples])
    acc = float((last.argmax(-1) == ans).float().mean())
    p = torch.softmax(last, -1)[torch.arange(len(examples)), ans]
    return acc, float(p.mean()), float(p.min())


# --------------------------------------------------------------------------- fixtures: causal LMs
def token_strings(tok, ids):
    return [tok.decode_token(i) for i in ids]


def build_fact_lm(name):
    family = 'gpt2' if name == 'gpt2' else 'llama'
    seed_all({'gpt2': 1001, 'llama': 1002}[name])
    subjects, facts, gtok, ltok = fact_world()
    tok = gtok if family == 'gpt2' else ltok
    examples = fact_examples(tok, facts)
    pad_id = tok.vocab['<|endoftext|>'] if family == 'gpt2' else tok.vocab['</s>']
    if family == 'gpt2':
        cfg = {'vocab': len(tok.vocab), 'd': 64, 'heads': 4, 'layers': 4, 'n_positions': 64, 'init_std': 0.02}
        model = GPT2LMHeadModel(cfg)
        heads_fn = gpt2_heads(model)
    else:
        cfg = {'vocab': len(tok.vocab), 'd': 64, 'heads': 4, 'kv_heads': 2, 'ffn': 128, 'layers': 4,
               'rope_theta': 10000.0, 'rms_eps': 1e-6, 'init_std': 0.02}
        model = LlamaForCausalLM(cfg)
        heads_fn = llama_heads(model)
    t0 = time.time()
    training = train_facts(model, examples, pad_id)  # wall time is printed, never recorded
    print(f'    trained {name}: {training["steps"]} steps, accuracy {training["factAccuracy"]}, '
          f'mean p {training["meanAnswerProb"]:.3f} ({time.time() - t0:.0f}s)')
    model.eval()
    spec = model.spec()
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    write_plain_json(out / 'tokenizer.json', tok.to_json())

    # the traced fact: subject in the middle, partner subject of equal token length
    fact_by = {(f['subject'], f['relation']): f for f in facts}
    tsub = subjects[1]
    prompt = TRACE_TEMPLATE.format(tsub)
    ids = tok.encode(prompt)
    subj = subject_range(tok, TRACE_TEMPLATE, tsub)
    attr = fact_by[(tsub, TRACE_RELATION)]['attribute']
    answer = tok.encode(prompt + ' ' + attr)[-1]
    partner = next(s for s in subjects if s != tsub and s[:3] != tsub[:3]
                   and fact_by[(s, TRACE_RELATION)]['attribute'] != attr
                   and subject_range(tok, TRACE_TEMPLATE, s)[1] - subj[0] == subj[1] - subj[0])
    partner_ids = tok.encode(TRACE_TEMPLATE.format(partner))[subj[0]:subj[1]]

    # runs: the trace prompt and a subject-first prompt, right-padded
    other = next(e for e in examples if e['template'].startswith('{}') and e['subject'] != tsub)
    in_ids, in_mask = pad_batch([ids, other['ids']], pad_id)
    with torch.no_grad():
        logits = model(in_ids, in_mask)
    export_onnx(model, (in_ids, in_mask), out / 'model.onnx', ['input_ids', 'attention_mask'], ['logits'],
                {'input_ids': {0: 'batch', 1: 'sequence'}, 'attention_mask': {0: 'batch', 1: 'sequence'},
                 'logits': {0: 'batch', 1: 'sequence'}})

    st = capture(spec, lambda: model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)))
    traces = []
    embed = {}
    with Hooks([(spec['embed'], lambda m, i, o: embed.__setitem__('out', o.detach().clone()))]), torch.no_grad():
        model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    emb = embed['out'][0, subj[0]:subj[1]].double()   # hook_embed at the subject tokens
    nu = float(np.float32(3.0 * emb.std(unbiased=False).item()))
    samples = 10
    noise = (np.random.RandomState(12345).randn(samples, subj[1] - subj[0], cfg['d']) * nu).astype(np.float32)
    corruptions = [{'type': 'replace', 'subject': partner, 'subjectIds': partner_ids},
                   {'type': 'noise', 'nu': nu, 'samples': samples, 'seed': 12345,
                    'noise': noise}]
    window = 2
    for corr in corruptions:
        for kind in ('residual', 'mlp', 'attn'):
            w = 1 if kind == 'residual' else window
            high, low, scores = causal_trace(model, spec, ids, subj, answer, corr, kind, w)
            traces.append({'kind': kind, 'window': w,
                           'inputTokens': {'ids': ids, 'strings': token_strings(tok, ids)},
                           'subjectRange': list(subj), 'answer': {'id': answer, 'text': tok.decode_token(answer)},
                           'highScore': high, 'lowScore': low, 'scores': scores, 'corruption': corr})
    contrib, bias_norm = contributions(st, spec, heads_fn)
    expected = {
        'fixture': name,
        'description': f'{"GPT-2" if family == "gpt2" else "LLaMA"} trained on synthetic facts.',
        'config': cfg,
        'files': {'model': 'model.onnx', 'tokenizer': 'tokenizer.json'},
        'tokenizer': {'kind': 'byte-level BPE' if family == 'gpt2' else 'sentencepiece-style BPE, byte fallback',
                      'vocabSize': len(tok.vocab), 'padId': pad_id,
                      'encodings': encodings(tok, [e['prompt'] for e in examples] +
                                             [e['prompt'] + e['answer']['text'] for e in examples[:8]] +
                                             ['Hello world, 123!', "It's a test: Zorvath plays the drum."])},
        'runs': [{'model': 'model.onnx',
                  'inputs': {'input_ids': tensor_spec(in_ids), 'attention_mask': tensor_spec(in_mask)},
                  'outputs': {'logits': tensor_spec(f32(logits))}}],
        'training': training,
        'facts': [{'subject': e['subject'], 'relation': e['relation'], 'template': e['template'],
                   'prompt': e['prompt'], 'promptIds': e['ids'], 'subjectRange': list(subject_range(tok, e['template'], e['subject'])),
                   'answer': e['answer']} for e in examples],
        'prompt': {'text': prompt, 'ids': ids, 'strings': token_strings(tok, ids), 'subject': tsub,
                   'subjectRange': list(subj), 'answer': {'id': answer, 'text': tok.decode_token(answer)}},
        'layers': layer_refs(st),
        'causalTrace': traces,
        'knockout': knockout(model, spec, ids, subj, answer, k=3),
        'contributions': {'position': len(ids) - 1, 'norms': contrib, 'outputBiasNorm': bias_norm},
        'logitLens': logit_lens(st, spec, answer),
    }
    write_json(out / 'expected.json', expected)


# --------------------------------------------------------------------------- fixtures: BERT, GPT-2 external
BERT_CORPUS = ['the cat sat on the mat.', 'a dog ran in the park', 'the quick brown fox jumps over the lazy dog',
               'she is reading a book', 'they were playing music', 'is this the right answer?',
               'the weather is nice today', 'we walked to the station', 'music and books', 'the red ball']


def build_bert():
    seed_all(1003)
    tok = WordPieceTokenizer(BERT_CORPUS, extra_pieces=['##s', '##ing', '##ed', '##er', '##ly', 'play', 'read', 'walk'])
    cfg = {'vocab': len(tok.vocab), 'd': 64, 'heads': 4, 'ffn': 128, 'layers': 2, 'max_pos': 64, 'init_std': 0.1}
    model = BertForExport(cfg).eval()
    out = FIXTURES / 'bert'
    out.mkdir(parents=True, exist_ok=True)
    write_plain_json(out / 'tokenizer.json', tok.to_json())
    a = tok.encode('the cat sat on the mat.')
    b = tok.encode('a dog ran', add_special_tokens=False) + [tok.vocab['[SEP]']]
    row1 = tok.encode('they walked quickly')
    T = len(a) + len(b)
    ids = torch.zeros(2, T, dtype=torch.long)
    types = torch.zeros(2, T, dtype=torch.long)
    mask = torch.zeros(2, T, dtype=torch.long)
    ids[0] = torch.tensor(a + b)
    types[0, len(a):] = 1
    mask[0] = 1
    ids[1, :len(row1)] = torch.tensor(row1)
    mask[1, :len(row1)] = 1
    st = capture(model.spec(), lambda: model(ids, mask, types))
    last, pooled = st['output']
    export_onnx(model, (ids, mask, types), out / 'model.onnx', ['input_ids', 'attention_mask', 'token_type_ids'],
                ['last_hidden_state', 'pooler_output'],
                {k: {0: 'batch', 1: 'sequence'} for k in ('input_ids', 'attention_mask', 'token_type_ids', 'last_hidden_state')}
                | {'pooler_output': {0: 'batch'}})
    expected = {
        'fixture': 'bert', 'description': 'BERT encoder with pooler, random weights (normal std 0.1).',
        'config': cfg, 'files': {'model': 'model.onnx', 'tokenizer': 'tokenizer.json'},
        'tokenizer': {'kind': 'WordPiece', 'vocabSize': len(tok.vocab),
                      'encodings': encodings(tok, BERT_CORPUS + ['They walked quickly', 'Xylophones, READING!'])},
        'runs': [{'model': 'model.onnx',
                  'inputs': {'input_ids': tensor_spec(ids), 'attention_mask': tensor_spec(mask),
                             'token_type_ids': tensor_spec(types)},
                  'outputs': {'last_hidden_state': tensor_spec(f32(last)), 'pooler_output': tensor_spec(f32(pooled))}}],
        'layers': {'inputRow': 0, **layer_refs(st, 0)},
    }
    write_json(out / 'expected.json', expected)


def build_gpt2_external():
    seed_all(1008)
    _, _, tok, _ = fact_world()
    cfg = {'vocab': len(tok.vocab), 'd': 32, 'heads': 2, 'layers': 2, 'n_positions': 32, 'init_std': 0.1}
    model = GPT2LMHeadModel(cfg).eval()
    out = FIXTURES / 'gpt2-external'
    out.mkdir(parents=True, exist_ok=True)
    write_plain_json(out / 'tokenizer.json', tok.to_json())
    ids, mask = pad_batch([tok.encode('The job of Zorvath is'), tok.encode('Hello world')], tok.vocab['<|endoftext|>'])
    st = capture(model.spec(), lambda: model(ids, mask))
    export_onnx(model, (ids, mask), out / 'model.onnx', ['input_ids', 'attention_mask'], ['logits'],
                {'input_ids': {0: 'batch', 1: 'sequence'}, 'attention_mask': {0: 'batch', 1: 'sequence'},
                 'logits': {0: 'batch', 1: 'sequence'}}, external=True)
    expected = {
        'fixture': 'gpt2-external',
        'description': 'Small random GPT-2 saved with external data: all initializers in model.onnx.data.',
        'config': cfg, 'files': {'model': 'model.onnx', 'externalData': 'model.onnx.data', 'tokenizer': 'tokenizer.json'},
        'tokenizer': {'kind': 'byte-level BPE (same as gpt2)', 'vocabSize': len(tok.vocab),
                      'encodings': encodings(tok, ['The job of Zorvath is', 'Hello world'])},
        'runs': [{'model': 'model.onnx', 'inputs': {'input_ids': tensor_spec(ids), 'attention_mask': tensor_spec(mask)},
                  'outputs': {'logits': tensor_spec(f32(st['output']))}}],
        'layers': {'inputRow': 0, **layer_refs(st, 0)},
    }
    write_json(out / 'expected.json', expected)


# --------------------------------------------------------------------------- fixtures: CLIP and ViT
COLOURS = {'red': (215, 40, 40), 'green': (40, 165, 60), 'blue': (45, 80, 215), 'yellow': (225, 205, 40)}
SHAPES = ['circle', 'square', 'triangle']
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]
CAPTION_TEMPLATES = ['{}', 'a photo of {}', 'an image of {}', 'a picture of {}', 'a {}']
ZERO_SHOT_TEMPLATE = 'a photo of {}'
EDIT_TEMPLATES = ['{}', 'a photo of {}', 'an image of {}', 'a picture of {}']
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGE = 32
SAMPLE_IMAGES = [('red', 'circle'), ('blue', 'square'), ('green', 'triangle'), ('yellow', 'circle')]


def render(rng, colour, shape, size=IMAGE):
    """A coloured shape on a noisy grey-ish background, uint8 [H, W, 3]."""
    g = rng.randint(70, 190)
    bg = np.array([g + rng.randint(-15, 16) for _ in range(3)], dtype=np.float64)
    img = bg[None, None, :] + rng.normal(0, 6, (size, size, 3))
    r = rng.uniform(10, 12)
    cx, cy = size / 2 + rng.uniform(-1.5, 1.5), size / 2 + rng.uniform(-1.5, 1.5)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if shape == 'circle':
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif shape == 'square':
        mask = (np.abs(xx - cx) <= 0.85 * r) & (np.abs(yy - cy) <= 0.85 * r)
    else:
        top, h = cy - r, 1.8 * r
        t = (yy - top) / h
        mask = (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * r)
    col = np.array(COLOURS[colour], dtype=np.float64) + np.array([rng.randint(-20, 21) for _ in range(3)])
    img[mask] = col + rng.normal(0, 4, (int(mask.sum()), 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def image_set(seed, per_class):
    rng = np.random.RandomState(seed)
    imgs, labels = [], []
    for k in range(per_class):
        for ci, (c, s) in enumerate(CLASSES):
            imgs.append(render(rng, c, s))
            labels.append(ci)
    return np.stack(imgs), np.array(labels)


def preprocess(imgs, mean, std):
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W]: (x / 255 - mean) / std, as HF image processors."""
    x = imgs.astype(np.float32) * np.float32(1 / 255)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def clip_tokenizer():
    texts = [t.format(f'{c} {s}') for t in CAPTION_TEMPLATES for c, s in CLASSES] * 3
    texts += ['a photo of a cat', 'an image of the sea']
    return BPETokenizer('clip', texts, min_freq=3, special_back=['<|startoftext|>', '<|endoftext|>'],
                        bos='<|startoftext|>', eos='<|endoftext|>')


def save_png(path, arr):
    from PIL import Image
    Image.fromarray(arr, mode='RGB').save(str(path), format='PNG', optimize=False)


def build_clip():
    seed_all(1004)
    tok = clip_tokenizer()
    eos = tok.vocab['<|endoftext|>']
    assert eos == len(tok.vocab) - 1
    tcfg = {'vocab': len(tok.vocab), 'd': 64, 'heads': 4, 'ffn': 128, 'layers': 2, 'max_pos': 16, 'proj': 32,
            'init_std': 0.02, 'hidden_act': 'quick_gelu', 'eos_token_id': eos, 'pad_token_id': eos}
    vcfg = {'d': 64, 'heads': 4, 'ffn': 128, 'layers': 2, 'image': IMAGE, 'patch': 8, 'proj': 32,
            'init_std': 0.02, 'hidden_act': 'quick_gelu'}
    text = CLIPTextModelWithProjection(tcfg)
    vision = CLIPVisionModelWithProjection(vcfg)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    train_imgs, train_labels = image_set(77, 80)
    test_imgs, test_labels = image_set(78, 20)
    val_imgs, val_labels = image_set(79, 10)
    xtrain = preprocess(train_imgs, CLIP_MEAN, CLIP_STD)
    xtest = preprocess(test_imgs, CLIP_MEAN, CLIP_STD)
    xval = preprocess(val_imgs, CLIP_MEAN, CLIP_STD)
    zs_ids, zs_mask = pad_batch([tok.encode(ZERO_SHOT_TEMPLATE.format(f'{c} {s}')) for c, s in CLASSES], eos)

    def zero_shot_acc(x, y):
        text.eval()
        vision.eval()
        with torch.no_grad():
            te = F.normalize(text(zs_ids, zs_mask)[0], dim=-1)
            ie = F.normalize(vision(x)[0], dim=-1)
        pred = (ie @ te.t()).argmax(-1).numpy()
        return {'colour': float(np.mean([CLASSES[p][0] == CLASSES[l][0] for p, l in zip(pred, y)])),
                'shape': float(np.mean([CLASSES[p][1] == CLASSES[l][1] for p, l in zip(pred, y)])),
                'both': float(np.mean(pred == y))}
    caption_ids = {}
    for ci, (c, s) in enumerate(CLASSES):
        for ti, t in enumerate(CAPTION_TEMPLATES):
            caption_ids[ci, ti] = tok.encode(t.format(f'{c} {s}'))
    opt = torch.optim.Adam(list(text.parameters()) + list(vision.parameters()) + [logit_scale], lr=2e-3)
    rng = np.random.RandomState(5)
    per = 3
    by_class = [np.nonzero(train_labels == ci)[0] for ci in range(len(CLASSES))]
    t0 = time.time()
    for step in range(1, 1201):
        text.train()
        vision.train()
        idx = np.concatenate([rng.choice(b, per, replace=False) for b in by_class])
        labels = torch.from_numpy(train_labels[idx])
        tids, tmask = pad_batch([caption_ids[ci, rng.randint(len(CAPTION_TEMPLATES))] for ci in range(len(CLASSES))], eos)
        ie = F.normalize(vision(xtrain[idx])[0], dim=-1)
        te = F.normalize(text(tids, tmask)[0], dim=-1)
        logits = logit_scale.exp() * ie @ te.t()
        target_t = (labels[None, :] == torch.arange(len(CLASSES))[:, None]).float() / per
        loss = 0.5 * (F.cross_entropy(logits, labels) - (target_t * F.log_softmax(logits.t(), -1)).sum(-1).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 and zero_shot_acc(xval, val_labels)['both'] >= 0.98:
            break
    steps = step
    # zero-shot: argmax over the 12 captions 'a photo of {colour} {shape}'
    acc = zero_shot_acc(xtest, test_labels)
    print(f'    trained clip: {steps} steps ({time.time() - t0:.0f}s), zero-shot {acc}')
    training = {'steps': steps, 'optimizer': 'Adam lr=2e-3', 'batch': f'{per} images per class, one caption per class',
                'stop': 'every 50 steps: zero-shot accuracy >= 0.98 on 120 validation images (seed 79)',
                'loss': 'symmetric InfoNCE: image->12 captions CE + caption->images soft CE (uniform over its class)',
                'logitScale': float(logit_scale.exp()), 'trainImages': int(len(train_labels)),
                'captionTemplates': CAPTION_TEMPLATES}
    zero_shot = {'template': ZERO_SHOT_TEMPLATE,
                 'classes': [{'colour': c, 'shape': s, 'caption': ZERO_SHOT_TEMPLATE.format(f'{c} {s}'),
                              'ids': tok.encode(ZERO_SHOT_TEMPLATE.format(f'{c} {s}'))} for c, s in CLASSES],
                 'testImages': int(len(test_labels)), 'testSeed': 78,
                 'rule': 'predicted class = argmax cosine(image_embeds, text_embeds of the 12 captions); colour/shape '
                         'accuracy = the predicted class has the right colour/shape', 'accuracy': acc}
    build_clip_text(text, tok, tcfg, training, zero_shot)
    build_clip_vision(vision, vcfg, training, zero_shot)
    build_vit(train_imgs, train_labels, test_imgs, test_labels)


def sample_images():
    rng = np.random.RandomState(4242)
    return [(f'{c}_{s}', render(rng, c, s)) for c, s in SAMPLE_IMAGES]


def build_clip_text(model, tok, cfg, training, zero_shot):
    out = FIXTURES / 'clip-text'
    out.mkdir(parents=True, exist_ok=True)
    write_plain_json(out / 'tokenizer.json', tok.to_json())
    eos = tok.vocab['<|endoftext|>']
    texts = ['a photo of red circle', 'blue square', 'an image of yellow triangle']
    ids, mask = pad_batch([tok.encode(t) for t in texts], eos)
    spec = model.spec()
    st = capture(spec, lambda: model(ids, mask))
    text_embeds, last = st['output']
    export_onnx(model, (ids, mask), out / 'model.onnx', ['input_ids', 'attention_mask'],
                ['text_embeds', 'last_hidden_state'],
                {'input_ids': {0: 'batch', 1: 'sequence'}, 'attention_mask': {0: 'batch', 1: 'sequence'},
                 'text_embeds': {0: 'batch'}, 'last_hidden_state': {0: 'batch', 1: 'sequence'}})

    # closed-form edit of layer 0's out_proj: red circle -> blue circle
    source, target, lam = 'red circle', 'blue circle', 0.01
    lin = model.text_model.encoder.layers[0].self_attn.out_proj

    def keys(concept):
        ks, pos = [], []
        for t in EDIT_TEMPLATES:
            tids = tok.encode(t.format(concept))
            p = len(tids) - 2                           # last token of the concept (before eos)
            z = {}
            with Hooks([(lin, lambda m, i, o: z.__setitem__('k', i[0].detach().clone()))]), torch.no_grad():
                model(torch.tensor([tids]), torch.ones(1, len(tids), dtype=torch.long))
            ks.append(z['k'][0, p].double())
            pos.append(p)
        return torch.stack(ks, 1), pos               # [d, n]
    K, kpos = keys(source)
    Kt, _ = keys(target)
    W = lin.weight.detach().double()
    V = W @ Kt
    d = W.shape[1]
    W_new = (lam * W + V @ K.t()) @ torch.linalg.inv(lam * torch.eye(d, dtype=torch.float64) + K @ K.t())
    edited = [t.format(source) for t in EDIT_TEMPLATES]
    targets = [t.format(target) for t in EDIT_TEMPLATES]
    unrelated = ['green square', 'a photo of yellow triangle', 'a picture of red square', 'an image of blue circle']

    def embeds(prompts):
        with torch.no_grad():
            return [f32(model(torch.tensor([tok.encode(p)]), torch.ones(1, len(tok.encode(p)), dtype=torch.long))[0][0])
                    for p in prompts]
    before = {k: embeds(v) for k, v in (('edited', edited), ('targets', targets), ('unrelated', unrelated))}
    old = lin.weight.data.clone()
    lin.weight.data = W_new.float()
    after = {k: embeds(v) for k, v in (('edited', edited), ('targets', targets), ('unrelated', unrelated))}
    lin.weight.data = old

    def cos(a, b):
        return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
    edit = {'weight': 'text_model.encoder.layers.0.self_attn.out_proj.weight', 'weightLayout': '[out, in] (nn.Linear)',
            'source': source, 'target': target, 'templates': EDIT_TEMPLATES, 'lambda': lam,
            'keyPositions': kpos, 'keys': f32(K.t()), 'targetKeys': f32(Kt.t()),
            'formula': "W' = (lambda W + V K^T)(lambda I + K K^T)^-1, V = W K_target, float64",
            'deltaW': f32(W_new - W),
            'prompts': {'edited': edited, 'targets': targets, 'unrelated': unrelated},
            'textEmbedsBefore': before, 'textEmbedsAfter': after,
            'cosineEditedToTarget': {'before': [cos(a, b) for a, b in zip(before['edited'], before['targets'])],
                                     'after': [cos(a, b) for a, b in zip(after['edited'], before['targets'])]}}
    expected = {
        'fixture': 'clip-text',
        'description': 'CLIP text tower (CLIPTextModelWithProjection), trained with clip-vision on coloured shapes.',
        'config': cfg, 'files': {'model': 'model.onnx', 'tokenizer': 'tokenizer.json'},
        'tokenizer': {'kind': 'CLIP BPE (lowercase, </w>, bos/eos, eos = highest id)', 'vocabSize': len(tok.vocab),
                      'bosId': tok.vocab['<|startoftext|>'], 'eosId': eos, 'padId': eos,
                      'encodings': encodings(tok, [t.format(f'{c} {s}') for t in CAPTION_TEMPLATES for c, s in CLASSES]
                                             + ['A  Photo of RED circle!', 'a photo of a cat'])},
        'runs': [{'model': 'model.onnx', 'inputs': {'input_ids': tensor_spec(ids), 'attention_mask': tensor_spec(mask)},
                  'outputs': {'text_embeds': tensor_spec(f32(text_embeds)), 'last_hidden_state': tensor_spec(f32(last))}}],
        'training': training,
        'zeroShot': zero_shot,
        'layers': {'inputRow': 0, 'text': texts[0], **layer_refs(st, 0)},
        'edit': edit,
    }
    write_json(out / 'expected.json', expected)


def build_clip_vision(model, cfg, training, zero_shot):
    out = FIXTURES / 'clip-vision'
    (out / 'images').mkdir(parents=True, exist_ok=True)
    samples = sample_images()
    for n, arr in samples:
        save_png(out / 'images' / f'{n}.png', arr)
    write_plain_json(out / 'preprocessor_config.json', {
        'crop_size': {'height': IMAGE, 'width': IMAGE}, 'do_center_crop': True, 'do_convert_rgb': True,
        'do_normalize': True, 'do_rescale': True, 'do_resize': True, 'feature_extractor_type': 'CLIPFeatureExtractor',
        'image_mean': CLIP_MEAN, 'image_processor_type': 'CLIPImageProcessor', 'image_std': CLIP_STD,
        'resample': 3, 'rescale_factor': 1 / 255, 'size': {'shortest_edge': IMAGE}})
    x = preprocess(np.stack([a for _, a in samples]), CLIP_MEAN, CLIP_STD)
    spec = model.spec()
    st = capture(spec, lambda: model(x))
    image_embeds, last = st['output']
    export_onnx(model, (x,), out / 'model.onnx', ['pixel_values'], ['image_embeds', 'last_hidden_state'],
                {'pixel_values': {0: 'batch'}, 'image_embeds': {0: 'batch'}, 'last_hidden_state': {0: 'batch'}})

    # exact decomposition of image_embeds[0]
    L, H = cfg['layers'], cfg['heads']
    dh = cfg['d'] // H
    comps = [('embed', st['resid_pre'][0][0, 0].double())]
    for l in range(L):
        lin = spec['attn_o'][l]
        z = st['attn_z'][l][0, 0].double()
        W = lin.weight.detach().double()
        for h in range(H):
            comps.append((f'blocks.{l}.attn.head.{h}', W[:, h * dh:(h + 1) * dh] @ z[h * dh:(h + 1) * dh]))
        comps.append((f'blocks.{l}.attn.bias', lin.bias.detach().double()))
        comps.append((f'blocks.{l}.mlp', st['mlp_out'][l][0, 0].double()))
    r = st['resid_post'][L - 1][0, 0].double()
    total = sum(c for _, c in comps)
    assert (total - r).abs().max() < 1e-4, (total - r).abs().max()
    ln = model.vision_model.post_layernorm
    P = model.visual_projection.weight.detach().double()
    std = torch.sqrt(r.var(unbiased=False) + ln.eps)
    gamma, beta = ln.weight.detach().double(), ln.bias.detach().double()
    N = len(comps)
    vecs = [P @ (gamma * (c - c.mean()) / std + beta / N) for _, c in comps]
    err = (sum(vecs) - image_embeds[0].double()).abs().max().item()
    assert err < 1e-5, err
    decomposition = {
        'image': samples[0][0], 'inputRow': 0, 'position': 0,
        'definition': 'image_embeds = sum(vector); residual components sum to the CLS resid_post of the last block; '
                      'vector = visual_projection(gamma * (c - mean(c)) / std + beta / N), std = sqrt(var(r) + eps) of '
                      'the actual CLS input r of post_layernorm, N = number of components',
        'std': float(std), 'count': N, 'maxError': err,
        'components': [{'name': n, 'vector': f32(v), 'residual': f32(c)} for (n, c), v in zip(comps, vecs)]}
    expected = {
        'fixture': 'clip-vision',
        'description': 'CLIP vision tower (CLIPVisionModelWithProjection), trained with clip-text on coloured shapes.',
        'config': cfg, 'files': {'model': 'model.onnx', 'preprocessor': 'preprocessor_config.json',
                                 'images': [f'images/{n}.png' for n, _ in samples]},
        'preprocessing': 'pixel_values = (png / 255 - image_mean) / image_std, channels first (no resize: 32x32)',
        'runs': [{'model': 'model.onnx', 'images': [f'images/{n}.png' for n, _ in samples],
                  'inputs': {'pixel_values': tensor_spec(x)},
                  'outputs': {'image_embeds': tensor_spec(f32(image_embeds)), 'last_hidden_state': tensor_spec(f32(last))}}],
        'training': training,
        'zeroShot': zero_shot,
        'layers': {'inputRow': 0, 'image': f'images/{samples[0][0]}.png', **layer_refs(st, 0)},
        'decomposition': decomposition,
    }
    write_json(out / 'expected.json', expected)


def build_vit(train_imgs=None, train_labels=None, test_imgs=None, test_labels=None):
    seed_all(1005)
    if train_imgs is None:
        train_imgs, train_labels = image_set(77, 80)
        test_imgs, test_labels = image_set(78, 20)
    mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    labels = [f'{c} {s}' for c, s in CLASSES]
    cfg = {'d': 64, 'heads': 4, 'ffn': 128, 'layers': 2, 'image': IMAGE, 'patch': 8, 'labels': len(CLASSES),
           'init_std': 0.02, 'hidden_act': 'gelu', 'id2label': {str(i): l for i, l in enumerate(labels)}}
    model = ViTForImageClassification(cfg)
    xtrain = preprocess(train_imgs, mean, std)
    xtest = preprocess(test_imgs, mean, std)
    ytrain = torch.from_numpy(train_labels)
    val_imgs, val_labels = image_set(79, 10)
    xval = preprocess(val_imgs, mean, std)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.RandomState(6)
    for step in range(1, 1201):
        model.train()
        idx = rng.choice(len(ytrain), 36, replace=False)
        loss = F.cross_entropy(model(xtrain[idx]), ytrain[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            model.eval()
            with torch.no_grad():
                if (model(xval).argmax(-1).numpy() == val_labels).mean() >= 0.98:
                    break
    steps = step
    model.eval()
    with torch.no_grad():
        acc = float((model(xtest).argmax(-1).numpy() == test_labels).mean())
    print(f'    trained vit: {steps} steps, test accuracy {acc}')
    out = FIXTURES / 'vit'
    out.mkdir(parents=True, exist_ok=True)
    write_plain_json(out / 'preprocessor_config.json', {
        'do_normalize': True, 'do_rescale': True, 'do_resize': True, 'image_mean': mean,
        'image_processor_type': 'ViTImageProcessor', 'image_std': std, 'resample': 2, 'rescale_factor': 1 / 255,
        'size': {'height': IMAGE, 'width': IMAGE}})
    samples = sample_images()
    x = preprocess(np.stack([a for _, a in samples]), mean, std)
    spec = model.spec()
    st = capture(spec, lambda: model(x))
    export_onnx(model, (x,), out / 'model.onnx', ['pixel_values'], ['logits'],
                {'pixel_values': {0: 'batch'}, 'logits': {0: 'batch'}})
    expected = {
        'fixture': 'vit', 'description': 'ViT image classifier trained on 12 colour x shape classes.',
        'config': cfg, 'files': {'model': 'model.onnx', 'preprocessor': 'preprocessor_config.json'},
        'preprocessing': 'pixel_values = (png / 255 - 0.5) / 0.5, channels first; images are ../clip-vision/images/*.png',
        'runs': [{'model': 'model.onnx', 'images': [f'../clip-vision/images/{n}.png' for n, _ in samples],
                  'inputs': {'pixel_values': tensor_spec(x)}, 'outputs': {'logits': tensor_spec(f32(st['output']))}}],
        'training': {'steps': steps, 'optimizer': 'Adam lr=2e-3, batch 36',
                     'stop': 'every 50 steps: accuracy >= 0.98 on 120 validation images (seed 79)', 'trainImages': int(len(train_labels)),
                     'testImages': int(len(test_labels)), 'accuracy': acc},
        'layers': {'inputRow': 0, 'image': f'../clip-vision/images/{samples[0][0]}.png', **layer_refs(st, 0)},
    }
    write_json(out / 'expected.json', expected)


# --------------------------------------------------------------------------- fixture: encoder-decoder
ED_SIZES = ['big', 'small', 'tiny', 'huge']
ED_OBJECTS = ['ball', 'box', 'cup', 'hat', 'car']
ED_COLOURS = ['red', 'green', 'blue', 'yellow', 'pink']
ED_QUERIES = [('colour:', 2), ('object:', 1), ('size:', 0)]   # decoder prompt, index of the attribute
ED_CARRIERS = [2, 3]


def build_encdec():
    seed_all(1006)
    sents = [(z, o, c) for z in ED_SIZES for o in ED_OBJECTS for c in ED_COLOURS]
    texts = [f'the {z} {o} is {c}' for z, o, c in sents]
    corpus = texts + [q + ' ' + a for q, _ in ED_QUERIES for a in ED_SIZES + ED_OBJECTS + ED_COLOURS] * 2
    tok = BPETokenizer('bytelevel', corpus, min_freq=3, special_front=['<s>', '<pad>', '</s>', '<unk>'],
                       special_back=['<mask>'], bos='<s>', eos='</s>')
    pad, start = tok.vocab['<pad>'], tok.vocab['</s>']
    post = {'type': 'RobertaProcessing', 'sep': ['</s>', start], 'cls': ['<s>', tok.vocab['<s>']],
            'trim_offsets': True, 'add_prefix_space': False}
    dec_prompt = {q: [start] + tok.encode(q, add_special_tokens=False) for q, _ in ED_QUERIES}
    for q, k in ED_QUERIES:
        for a in (ED_SIZES, ED_OBJECTS, ED_COLOURS)[k]:
            full = tok.encode(q + ' ' + a, add_special_tokens=False)
            assert full[:-1] == dec_prompt[q][1:] and len(tok.tokens(' ' + a)) == 1, (q, a)
    cfg = {'vocab': len(tok.vocab), 'd': 32, 'heads': 4, 'ffn': 64, 'enc_layers': 2, 'dec_layers': 6, 'max_pos': 32,
           'init_std': 0.02, 'activation': 'gelu', 'decoder_start_token_id': start, 'pad_token_id': pad,
           'tie_word_embeddings': True}
    model = BartForConditionalGeneration(cfg)
    frozen = [l for l in range(cfg['dec_layers']) if l not in ED_CARRIERS]
    for l in frozen:
        op = model.model.decoder.layers[l].encoder_attn.out_proj
        nn.init.zeros_(op.weight)
        nn.init.zeros_(op.bias)
        op.weight.requires_grad_(False)
        op.bias.requires_grad_(False)
    enc_ids, enc_mask = pad_batch([tok.encode(t) for t in texts], pad)
    groups = []
    for q, k in ED_QUERIES:
        ans = torch.tensor([tok.encode(q + ' ' + s[k], add_special_tokens=False)[-1] for s in sents])
        groups.append((q, torch.tensor([dec_prompt[q]] * len(sents)), ans))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)

    def evaluate():
        model.eval()
        hits, ps = [], []
        with torch.no_grad():
            for q, dec, ans in groups:
                logits = model(enc_ids, enc_mask, dec)[:, -1]
                hits.append(logits.argmax(-1) == ans)
                ps.append(torch.softmax(logits, -1)[torch.arange(len(ans)), ans])
        return float(torch.cat(hits).float().mean()), float(torch.cat(ps).mean()), float(torch.cat(ps).min())
    t0 = time.time()
    for step in range(1, 3001):
        model.train()
        loss = 0
        for q, dec, ans in groups:
            loss = loss + F.cross_entropy(model(enc_ids, enc_mask, dec)[:, -1], ans)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            acc, pm, pmin = evaluate()
            if acc == 1.0 and pm > 0.9 and pmin > 0.5:
                break
    acc, pm, pmin = evaluate()
    for l in frozen:
        assert float(model.model.decoder.layers[l].encoder_attn.out_proj.weight.abs().max()) == 0.0
    print(f'    trained encdec: {step} steps ({time.time() - t0:.0f}s), accuracy {acc}, mean p {pm:.3f}')
    model.eval()
    out = FIXTURES / 'encdec'
    out.mkdir(parents=True, exist_ok=True)
    write_plain_json(out / 'tokenizer.json', tok.to_json(post_processor=post))

    # runs: one graph, and optimum-style encoder + decoder
    r_ids, r_mask = pad_batch([tok.encode('the big ball is red'), tok.encode('the cup is blue')], pad)
    r_dec = torch.tensor([dec_prompt['colour:']] * 2)
    with torch.no_grad():
        logits = model(r_ids, r_mask, r_dec)
        enc_out = model.model.encoder(r_ids, r_mask)
    dyn = {'input_ids': {0: 'batch', 1: 'encoder_sequence'}, 'attention_mask': {0: 'batch', 1: 'encoder_sequence'},
           'decoder_input_ids': {0: 'batch', 1: 'decoder_sequence'}, 'logits': {0: 'batch', 1: 'decoder_sequence'}}
    export_onnx(model, (r_ids, r_mask, r_dec), out / 'model.onnx', ['input_ids', 'attention_mask', 'decoder_input_ids'],
                ['logits'], dyn)
    export_onnx(BartEncoderExport(model), (r_ids, r_mask), out / 'encoder.onnx', ['input_ids', 'attention_mask'],
                ['last_hidden_state'], {'input_ids': {0: 'batch', 1: 'encoder_sequence'},
                                        'attention_mask': {0: 'batch', 1: 'encoder_sequence'},
                                        'last_hidden_state': {0: 'batch', 1: 'encoder_sequence'}})
    export_onnx(BartDecoderExport(model), (r_dec, enc_out, r_mask), out / 'decoder.onnx',
                ['input_ids', 'encoder_hidden_states', 'encoder_attention_mask'], ['logits'],
                {'input_ids': {0: 'batch', 1: 'decoder_sequence'},
                 'encoder_hidden_states': {0: 'batch', 1: 'encoder_sequence'},
                 'encoder_attention_mask': {0: 'batch', 1: 'encoder_sequence'},
                 'logits': {0: 'batch', 1: 'decoder_sequence'}})

    # per-layer references for row 0 (encoder and decoder, one forward)
    enc_spec, dec_spec = model.spec('encoder'), model.spec('decoder')
    st_dec = {}

    def run_both():
        st_dec['st'] = capture(dec_spec, lambda: model(r_ids, r_mask, r_dec))
        return st_dec['st']['output']
    st_enc = capture(enc_spec, run_both, keys=('attn',))

    # cross-attention localisation
    orig_t, targ_t = 'the big ball is red', 'the big ball is blue'
    o_ids, t_ids = torch.tensor([tok.encode(orig_t)]), torch.tensor([tok.encode(targ_t)])
    assert o_ids.shape == t_ids.shape
    m1 = torch.ones_like(o_ids)
    dec = torch.tensor([dec_prompt['colour:']])
    a_orig = tok.encode('colour: red', add_special_tokens=False)[-1]
    a_targ = tok.encode('colour: blue', add_special_tokens=False)[-1]
    with torch.no_grad():
        enc_t = model.model.encoder(t_ids, m1)
    L = cfg['dec_layers']

    def probs_with_target(layers):
        fwd = []
        for l in layers:
            ea = model.model.decoder.layers[l].encoder_attn
            for lin in (ea.k_proj, ea.v_proj):
                fwd.append((lin, lambda m, i, o: F.linear(enc_t, m.weight, m.bias)))
        with Hooks(fwd), torch.no_grad():
            p = torch.softmax(model(o_ids, m1, dec)[0, -1], -1)
        return {'pTarget': float(p[a_targ]), 'pOriginal': float(p[a_orig])}
    w = 2
    windows, complement = [], []
    for s0 in range(L - w + 1):
        layers = list(range(s0, s0 + w))
        windows.append({'layers': layers, **probs_with_target(layers)})
        complement.append({'layers': layers, **probs_with_target([l for l in range(L) if l not in layers])})
    localization = {
        'definition': 'decoder cross-attention layers in `layers` compute K and V (k_proj/v_proj of encoder_attn) '
                      'from the encoder output of the target prompt, all other layers from the original prompt; '
                      'p = softmax of the last decoder position. complement: the window keeps the original and all '
                      'other layers get the target.',
        'window': w, 'original': {'text': orig_t, 'ids': o_ids[0].tolist(), 'answer': {'id': a_orig, 'text': ' red'}},
        'target': {'text': targ_t, 'ids': t_ids[0].tolist(), 'answer': {'id': a_targ, 'text': ' blue'}},
        'decoderInputIds': dec[0].tolist(), 'decoderPrompt': 'colour:',
        'none': probs_with_target([]), 'all': probs_with_target(list(range(L))),
        'windows': windows, 'complement': complement,
        'carrierLayers': ED_CARRIERS, 'zeroedLayers': frozen,
        'knownAnswer': 'only decoder layers 2 and 3 have a trained cross-attention; the other layers\' '
                       'encoder_attn.out_proj weight and bias are zero and were frozen during training'}
    expected = {
        'fixture': 'encdec',
        'description': 'BART-layout encoder-decoder trained to answer colour/object/size questions about the encoder '
                       'sentence through cross-attention layers 2 and 3 only.',
        'config': cfg,
        'files': {'model': 'model.onnx', 'encoder': 'encoder.onnx', 'decoder': 'decoder.onnx',
                  'tokenizer': 'tokenizer.json'},
        'tokenizer': {'kind': 'byte-level BPE, RobertaProcessing (<s> A </s>)', 'vocabSize': len(tok.vocab),
                      'encodings': encodings(tok, texts[:20] + ['The Big Ball is red!']) +
                      encodings(tok, [q for q, _ in ED_QUERIES] + ['colour: red', 'size: tiny'], add_special_tokens=False)},
        'decoderPrompts': {q: dec_prompt[q] for q, _ in ED_QUERIES},
        'runs': [
            {'model': 'model.onnx', 'inputs': {'input_ids': tensor_spec(r_ids), 'attention_mask': tensor_spec(r_mask),
                                               'decoder_input_ids': tensor_spec(r_dec)},
             'outputs': {'logits': tensor_spec(f32(logits))}},
            {'model': 'encoder.onnx', 'inputs': {'input_ids': tensor_spec(r_ids), 'attention_mask': tensor_spec(r_mask)},
             'outputs': {'last_hidden_state': tensor_spec(f32(enc_out))}},
            {'model': 'decoder.onnx', 'inputs': {'input_ids': tensor_spec(r_dec),
                                                 'encoder_hidden_states': tensor_spec(f32(enc_out)),
                                                 'encoder_attention_mask': tensor_spec(r_mask)},
             'outputs': {'logits': tensor_spec(f32(logits))}}],
        'training': {'steps': step, 'optimizer': 'Adam lr=3e-3, full batch', 'examples': len(sents) * len(ED_QUERIES),
                     'task': 'encoder "the {size} {object} is {colour}", decoder [</s>] + "colour:"|"object:"|"size:" '
                             '-> the attribute token', 'accuracy': acc, 'meanAnswerProb': pm, 'minAnswerProb': pmin},
        'layers': {'inputRow': 0, 'encoder': layer_refs(st_enc, 0), 'decoder': layer_refs(st_dec['st'], 0, cross=True)},
        'localization': localization,
    }
    write_json(out / 'expected.json', expected)


# --------------------------------------------------------------------------- main
BUILDERS = {
    'gpt2': lambda: build_fact_lm('gpt2'),
    'llama': lambda: build_fact_lm('llama'),
    'bert': lambda: build_bert(),
    'clip': lambda: build_clip(),
    'encdec': lambda: build_encdec(),
    'gpt2-external': lambda: build_gpt2_external(),
}
ALIASES = {'clip-text': 'clip', 'clip-vision': 'clip', 'vit': 'clip'}  # one builder: same images


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('fixtures', nargs='*', help='fixtures to (re)generate (default: all)')
    ap.add_argument('--list', action='store_true')
    args = ap.parse_args()
    if args.list:
        print('\n'.join(['gpt2', 'llama', 'bert', 'clip-text', 'clip-vision', 'vit', 'encdec', 'gpt2-external']))
        return
    names = []
    for n in args.fixtures or list(BUILDERS):
        n = ALIASES.get(n, n)
        if n not in BUILDERS:
            sys.exit(f'unknown fixture {n!r}; try --list')
        if n not in names:
            names.append(n)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    for n in names:
        t0 = time.time()
        print(f'{n} ...', flush=True)
        BUILDERS[n]()
        print(f'  {n} done in {time.time() - t0:.0f}s', flush=True)
    print(f'all done in {time.time() - t_all:.0f}s')


if __name__ == '__main__':
    main()
