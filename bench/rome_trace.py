#!/usr/bin/env python3
"""The PyTorch reference for the causal-trace benchmark: ROME's loop
(experiments/causal_trace.py: trace_with_patch / trace_important_states /
trace_important_window) written out on the benchmark's GPT-2, with forward hooks.

For each kind (residual, mlp, attn), each layer and each token: ONE forward of a batch of
1 clean + `samples` noised rows; a hook on transformer.wte adds the noise to the subject's
token embeddings of rows 1.. (a fresh numpy RandomState(seed) per call, as ROME: the same
noise in every call), hooks on the restored modules copy row 0's state into rows 1.. at the
token (residual: block h.L output; mlp/attn: h.j.mlp / h.j.attn outputs for j in the window
[L - w//2, L - (-w//2)) clipped). Score: mean over the noised rows of softmax(logits[:, -1])
at the answer. The clean and corrupted runs are one forward each.

Prints one JSON line: {seconds, calls, forwardSeconds, highScore, lowScore, answer, nu, scores}.
With --fraction f < 1 only every (1/f)-th restoration call is run and the loop time is
extrapolated to the full sweep ("extrapolated": true).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
from make_bench_models import GPT2LMHeadModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model-dir', required=True)
    ap.add_argument('--ids', required=True, help='comma-separated prompt token ids')
    ap.add_argument('--subject', required=True, help='start,end token range')
    ap.add_argument('--samples', type=int, default=10)
    ap.add_argument('--window', type=int, default=4)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--fraction', type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = Path(a.model_dir)
    cfg = json.loads((d / 'config.json').read_text())
    model = GPT2LMHeadModel(cfg)
    model.load_state_dict(torch.load(d / 'state_dict.pt'))
    model.eval()
    t = model.transformer
    L = len(t.h)
    ids = [int(x) for x in a.ids.split(',')]
    T = len(ids)
    b, e = (int(x) for x in a.subject.split(','))
    inp = torch.tensor([ids] * (1 + a.samples))
    mask = torch.ones_like(inp)

    with torch.no_grad():
        emb = t.wte(torch.tensor(ids[b:e]))
    nu = 3.0 * float(emb.std(unbiased=False))  # ROME: 3 x the std of subject embeddings

    def trace_with_patch(states, noise=True):
        """ROME's trace_with_patch: states = [(token, module)]; returns mean p(answer) of rows 1..
        (or the full softmax of row 0 when there is no noise)."""
        rs = np.random.RandomState(a.seed)
        spec = {}
        for tok, mod in states:
            spec.setdefault(mod, []).append(tok)
        handles = []

        def add_noise(m, i, x):
            x[1:, b:e] += nu * torch.from_numpy(rs.randn(x.shape[0] - 1, e - b, x.shape[2])).to(x.dtype)
            return x

        def restore(m, i, x):
            h = x[0] if isinstance(x, tuple) else x
            for tok in spec[m]:
                h[1:, tok] = h[0, tok]
            return x
        if noise:
            handles.append(t.wte.register_forward_hook(add_noise))
        for mod in spec:
            handles.append(mod.register_forward_hook(restore))
        try:
            with torch.no_grad():
                logits = model(inp if noise else inp[:1], mask if noise else mask[:1])
        finally:
            for h in handles:
                h.remove()
        probs = torch.softmax(logits[:, -1, :], dim=1)
        return probs[0] if not noise else probs[1:].mean(0)

    t0 = time.perf_counter()
    clean = trace_with_patch([], noise=False)
    answer = int(clean.argmax())
    high = float(clean[answer])
    low = float(trace_with_patch([])[answer])
    t_setup = time.perf_counter() - t0

    calls = []
    for kind in ('residual', 'mlp', 'attn'):
        for layer in range(L):
            if kind == 'residual':
                mods = [t.h[layer]]
            else:
                lo, hi = max(0, layer - a.window // 2), min(L, layer - (-a.window // 2))
                mods = [getattr(t.h[j], kind) for j in range(lo, hi)]
            for tok in range(T):
                calls.append((kind, layer, tok, mods))
    step = max(1, round(1 / a.fraction)) if a.fraction < 1 else 1
    scores = {k: [[None] * T for _ in range(L)] for k in ('residual', 'mlp', 'attn')}
    t1 = time.perf_counter()
    ran = 0
    for i, (kind, layer, tok, mods) in enumerate(calls):
        if i % step:
            continue
        scores[kind][layer][tok] = float(trace_with_patch([(tok, m) for m in mods])[answer])
        ran += 1
    loop = time.perf_counter() - t1
    total = t_setup + loop * len(calls) / ran
    print(json.dumps({'seconds': total, 'setupSeconds': t_setup, 'loopSeconds': loop, 'calls': len(calls),
                      'callsRun': ran, 'extrapolated': ran < len(calls), 'threads': torch.get_num_threads(),
                      'highScore': high, 'lowScore': low, 'answer': answer, 'nu': nu, 'scores': scores}))


if __name__ == '__main__':
    main()
