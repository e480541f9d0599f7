#!/usr/bin/python3
"""PyTorch baseline for `make bench`: the same flip-flop-sized model (pre-norm, GELU, tied embeddings,
no dropout) written the usual PyTorch way (nn.Linear, nn.LayerNorm, masked softmax attention; CoPE
as the official code: sigmoid gates, flip-cumsum-flip, clamp, gather at floor/ceil), timed for a
forward, backward and AdamW step in float32. Run with Debian's /usr/bin/python3 (python3-torch).

    /usr/bin/python3 scripts/bench_torch.py --pe none|cope [--threads 2] [--L 4] [--d 256] [--H 4] [--V 5]
        [--T 512] [--B 16] [--steps 3] [--tok-s-only]

--tok-s-only prints tokens/s alone (scripts/bench.sh hands it to build/bench, which prints the ratio).
Run it with glibc's malloc told to keep its memory (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=-1, as
scripts/bench.sh does): otherwise every step's large tensors are fresh pages and PyTorch spends much
of its time in page faults, which is not its best case.
"""
import argparse
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CoPE(nn.Module):
    def __init__(self, npos, head_dim):
        super().__init__()
        self.npos = npos
        self.pos_emb = nn.Parameter(torch.randn(1, head_dim, npos) * 0.1)

    def forward(self, query, attn_logits):
        gates = torch.sigmoid(attn_logits)
        pos = gates.flip(-1).cumsum(dim=-1).flip(-1).clamp(max=self.npos - 1)
        pos_ceil, pos_floor = pos.ceil().long(), pos.floor().long()
        logits_int = torch.matmul(query, self.pos_emb)
        w = pos - pos_floor
        return logits_int.gather(-1, pos_ceil) * w + logits_int.gather(-1, pos_floor) * (1 - w)


class Layer(nn.Module):
    def __init__(self, C, H, T, cope):
        super().__init__()
        self.H = H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.q, self.k, self.v, self.o = (nn.Linear(C, C) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.cope = CoPE(T + 1, C // H) if cope else None

    def forward(self, x, mask):
        B, T, C = x.shape
        h = self.ln1(x)
        split = lambda t: t.view(B, T, self.H, C // self.H).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        logits = q @ k.transpose(-1, -2) / math.sqrt(C // self.H)
        logits = logits.masked_fill(~mask, float("-inf"))
        if self.cope is not None:
            logits = logits + self.cope(q, logits)
        a = torch.softmax(logits, dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, C))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pe", default="none", choices=["none", "cope"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--L", type=int, default=4)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--H", type=int, default=4)
    ap.add_argument("--V", type=int, default=5)
    ap.add_argument("--T", type=int, default=512)
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--micro", type=int, default=1, help="micro-batches a step (gradient accumulation), as train.grad_accum")
    ap.add_argument("--tok-s-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    C, H, L, V, T, B = args.d, args.H, args.L, args.V, args.T, args.B
    emb = nn.Embedding(V, C)
    layers = nn.ModuleList(Layer(C, H, T, args.pe == "cope") for _ in range(L))
    lnf = nn.LayerNorm(C)
    params = list(emb.parameters()) + list(layers.parameters()) + list(lnf.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randint(0, V, (B, T))
    y = torch.randint(0, V, (B, T))
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    times = []
    k = args.micro
    if B % k:
        ap.error(f"--B {B} does not split into --micro {k} micro-batches")
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        for xm, ym in zip(x.chunk(k), y.chunk(k)):
            h = emb(xm)
            for layer in layers:
                h = layer(h, mask)
            logits = lnf(h) @ emb.weight.t()
            loss = F.cross_entropy(logits.view(-1, V), ym.reshape(-1)) / k
            loss.backward()
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - t0)
    ms = 1e3 * sum(times) / len(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.tok_s_only:
        print(f"{B * T / (ms / 1e3):.1f}")
        return
    print(f"pytorch {torch.__version__} {args.pe:6s} L={L} d={C} H={H} T={T:<5d} B={B:<3d} micro={k} threads={args.threads} | "
          f"step {ms:8.1f} ms | {B * T / (ms / 1e3):8.0f} tok/s | peak {peak:6.0f} MiB")


if __name__ == "__main__":
    main()
