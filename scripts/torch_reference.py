#!/usr/bin/python3
"""An independent PyTorch (float64) reference of copetrain's model, written from the official semantics
(docs/cope.md §3-§4 CoPE, docs/baselines.md §1-§7 baselines and architecture), not from our C code.
scripts/torch_crosscheck.py loads a dump of the C model's weights into it and compares logits, loss
and every parameter gradient (torch autograd).

    tokens ─► wte[tokens] (+ learned wpe[t] | + sinusoids) ─► L × layer ─► [lnf] ─► x·lm_headᵀ ─► NLL
    post-norm (official):  x = LN1(x + MHA(x));     x = LN2(x + FF(x))
    pre-norm (GPT-2):      x = x + MHA(LN1(x));     x = x + FF(LN2(x));   final lnf
    MHA: q, k, v, out Linear(C, C) with bias, heads by reshape (head h = channels h·dh .. h·dh+dh-1)
    FF:  Linear(C, F) → ReLU | GELU (erf) → Linear(F, C)

Dropout is off (the cross-check runs with dropout key 0), so it does not appear here.

Parameters are a dict {name: tensor} with our checkpoint's names ("wte", "wpe", "rel_table",
"layers.<l>.wq", ..., "lnf_w", "lm_head"); linear weights are (out, in) like nn.Linear, the CoPE and
relative tables (head_dim, npos) like the official `pos_emb` / `emb` (1 × d × npos).

As a program (/usr/bin/python3 scripts/torch_reference.py) it runs self-tests of the position
encodings against the pure-Python CoPE of docs/cope.md §7 and a few identities.
"""
import math
import sys

import torch

LN_EPS = 1e-5  # nn.LayerNorm's default, which the official code uses (§5)


# --------------------------------------------------------------------------------------------------
# Configuration read from the dump's resolved config (JSON sections model, pe)

class Spec:
    """What the reference needs to know about a model; built from the resolved config dict."""

    def __init__(self, cfg, vocab):
        m, pe = cfg["model"], cfg["pe"]
        self.V = vocab
        self.L = m["n_layers"]
        self.C = m["d_model"]
        self.H = m["n_heads"]
        self.F = m["d_ff"] if m.get("d_ff", 0) else 4 * self.C
        self.dh = self.C // self.H
        self.norm = m["norm"]
        self.activation = m["activation"]
        self.tied = bool(m["tie_embeddings"])
        self.block_size = m["block_size"]
        self.pe_type = pe["type"]
        parts = set(self.pe_type.split("+"))
        self.abs = "abs" in parts
        self.abs_kind = pe.get("abs_kind", "learned")
        self.rel = "rel" in parts
        self.rope = "rope" in parts
        self.cope = "cope" in parts
        self.rope_base = float(pe.get("rope_base", 10000.0))
        self.rel_npos = pe.get("rel_max_distance", 0) or self.block_size
        # pe.rel_beyond: refuse | zero | cap (pe.rel_capped true is the old name of "cap")
        self.rel_beyond = pe.get("rel_beyond", "cap" if pe.get("rel_capped", False) else "refuse")
        self.cope_npos = pe.get("npos", 0) or self.block_size + 1
        self.nodiv = bool(pe.get("nodiv", False))
        self.sep_keys = bool(pe.get("sep_keys", False))
        self.every_k = pe.get("every_k_layers", 1) or 1
        self.shared_table = bool(pe.get("shared_table", False))
        self.rope_gates = pe.get("rope_gates", "rotated")

    def cope_layer(self, l):
        # official --cope-layers K: layer l (0-based) uses CoPE when (l+1) % K == 0
        return self.cope and (l + 1) % self.every_k == 0

    def cope_table_owner(self, l):
        """The layer whose table layer l's CoPE uses (--cope-shared: the first CoPE layer's)."""
        if not self.shared_table:
            return l
        return next(i for i in range(self.L) if self.cope_layer(i))

    def shapes(self):
        """{name: shape} of every parameter, in no particular order."""
        V, C, F, dh = self.V, self.C, self.F, self.dh
        s = {"wte": (V, C)}
        if self.abs and self.abs_kind == "learned":
            s["wpe"] = (self.block_size, C)
        if self.rel:
            s["rel_table"] = (dh, self.rel_npos)
        for l in range(self.L):
            p = f"layers.{l}."
            for n in ("ln1_w", "ln1_b", "ln2_w", "ln2_b", "bq", "bk", "bv", "bo", "fc2_b"):
                s[p + n] = (C,)
            for n in ("wq", "wk", "wv", "wo"):
                s[p + n] = (C, C)
            s[p + "fc1_w"], s[p + "fc1_b"], s[p + "fc2_w"] = (F, C), (F,), (C, F)
            if self.cope_layer(l):
                if self.sep_keys:
                    s[p + "wkc"], s[p + "bkc"] = (C, C), (C,)
                if self.cope_table_owner(l) == l:
                    s[p + "cope_table"] = (dh, self.cope_npos)
        if self.norm == "pre":
            s["lnf_w"], s["lnf_b"] = (C,), (C,)
        if not self.tied:
            s["lm_head"] = (V, C)
        return s


# --------------------------------------------------------------------------------------------------
# Position encodings

def sinusoids(T, C):
    """Vaswani et al.: PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C))."""
    t = torch.arange(T, dtype=torch.float64)[:, None]
    i2 = torch.arange(0, C, 2, dtype=torch.float64)[None, :]
    ang = t / torch.pow(torch.tensor(10000.0, dtype=torch.float64), i2 / C)
    pe = torch.zeros(T, C, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang)[:, : C // 2]
    return pe


def rope(x, base):
    """Standard RoPE (Su et al.) on x (..., T, dh): pair (2m, 2m+1) at position t rotated by the angle
    t·base^(-2m/dh)."""
    T, dh = x.shape[-2], x.shape[-1]
    t = torch.arange(T, dtype=torch.float64)[:, None]
    m2 = torch.arange(0, dh, 2, dtype=torch.float64)[None, :]
    ang = t * torch.pow(torch.tensor(base, dtype=torch.float64), -m2 / dh)  # (T, dh/2)
    cos, sin = torch.cos(ang), torch.sin(ang)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack((y0, y1), dim=-1).flatten(-2)


def rel_logits(q, table, beyond):
    """Shaw-style relative term (official RelPosEmb, §4.2): R_ij = q_i·r_m, m = n-1-(i-j), one table
    (dh, n) for all layers and heads. Distances beyond n-1: "cap" (--rel-pos-extend) uses column 0,
    "zero" adds nothing (the official uncapped model), "refuse" refuses T > n.
    Entries j > i are garbage and must be masked by the caller."""
    T, n = q.shape[-2], table.shape[-1]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    m = n - 1 - (i - j)
    if beyond == "refuse" and T > n:
        raise ValueError(f"relative PE with {n} columns refuses T={T} (pe.rel_beyond refuse)")
    far = m < 0
    m = m.clamp(min=0, max=n - 1)  # j > i (masked) and the far distances
    zr = q @ table  # (..., T, n): logit against every distance column
    r = zr.gather(-1, m.expand(*zr.shape[:-2], T, T))
    return r.masked_fill(far, 0.0) if beyond == "zero" else r


def cope_logits(q, gate_logits, table, mask, npos):
    """The official ContextPosSelfAttn CoPE term (§2.2), per head.
    q (..., T, dh); gate_logits (..., T, T) = q·kc / sqrt(dh) (already scaled); table (dh, npos);
    mask (..., T, T) bool. Returns (pos_logits, positions) with positions clamped."""
    gates = torch.sigmoid(gate_logits) * mask.to(q.dtype)
    positions = gates.flip(-1).cumsum(-1).flip(-1)  # p_ij = Σ_{t>=j} g_it
    positions = positions.clamp(max=npos - 1)
    z = q @ table  # (..., T, npos)
    pc = positions.ceil().long()
    pf = positions.floor().long()
    w = positions - pf.to(q.dtype)  # pf is not differentiated: d w / d positions = 1
    return z.gather(-1, pc) * w + z.gather(-1, pf) * (1 - w), positions


# --------------------------------------------------------------------------------------------------
# The model

def layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased, as nn.LayerNorm
    return (x - mu) / torch.sqrt(var + LN_EPS) * w + b


def linear(x, w, b=None):
    y = x @ w.t()
    return y + b if b is not None else y


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def attention_mask(key_pad, T):
    """(B, 1, T, T) bool: causal AND key not padding, diagonal always allowed (§5 Masks)."""
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    keep = ~key_pad.bool()[:, None, None, :]  # (B, 1, 1, T)
    diag = torch.eye(T, dtype=torch.bool)
    return (causal & keep) | diag


def mha(spec, P, l, x, mask):
    """Multi-head self-attention of layer l on x (B, T, C)."""
    B, T, C = x.shape
    H, dh = spec.H, spec.dh
    p = f"layers.{l}."

    def heads(y):
        return y.view(B, T, H, dh).transpose(1, 2)  # (B, H, T, dh)

    q = heads(linear(x, P[p + "wq"], P[p + "bq"]))
    k = heads(linear(x, P[p + "wk"], P[p + "bk"]))
    v = heads(linear(x, P[p + "wv"], P[p + "bv"]))
    kc = heads(linear(x, P[p + "wkc"], P[p + "bkc"])) if spec.cope_layer(l) and spec.sep_keys else None
    out = attend(spec, P, l, q, k, v, kc, mask)
    return linear(out.transpose(1, 2).reshape(B, T, C), P[p + "wo"], P[p + "bo"])


def attend(spec, P, l, q, k, v, kc, mask):
    """Layer l's attention on heads q, k, v (..., T, dh) (kc: the separate CoPE gate keys or None)."""
    s = 1.0 / math.sqrt(spec.dh)
    q_in, k_in = q, k
    if spec.rope:
        q, k = rope(q, spec.rope_base), rope(k, spec.rope_base)
    qk = q @ k.transpose(-1, -2)
    logits = qk
    if spec.rel:
        logits = logits + rel_logits(q, P["rel_table"], spec.rel_beyond)
    if spec.cope_layer(l):
        # Gate logits: attention's own q·k (shared keys), or q·kc with the separate key projection
        # (--cope-sep-key). Under RoPE the gates see the rotated q, k (and rotated kc) by default, the
        # unrotated ones with rope_gates = "unrotated"; Z = q·E always uses the q attention uses.
        unrot = spec.rope and spec.rope_gates == "unrotated"
        gq = q_in if unrot else q
        if kc is None:
            kc = k_in if unrot else k
        elif spec.rope and not unrot:
            kc = rope(kc, spec.rope_base)
        gate_logits = gq @ kc.transpose(-1, -2)
        table = P[f"layers.{spec.cope_table_owner(l)}.cope_table"]
        pos_logits, _ = cope_logits(q, gate_logits * s, table, mask, spec.cope_npos)
        if spec.nodiv:
            logits = logits * s + pos_logits
        else:
            logits = (logits + pos_logits) * s
    else:
        logits = logits * s
    logits = torch.where(mask, logits, torch.tensor(-math.inf, dtype=logits.dtype))
    return torch.softmax(logits, dim=-1) @ v


def feed_forward(spec, P, l, x):
    p = f"layers.{l}."
    h = linear(x, P[p + "fc1_w"], P[p + "fc1_b"])
    h = torch.relu(h) if spec.activation == "relu" else gelu(h)
    return linear(h, P[p + "fc2_w"], P[p + "fc2_b"])


def forward(spec, P, tokens, key_pad):
    """Logits (B, T, V) for tokens (B, T) long, key_pad (B, T)."""
    B, T = tokens.shape
    x = P["wte"][tokens]
    if spec.abs:
        if spec.abs_kind == "learned":
            x = x + P["wpe"][:T]
        else:
            x = x + sinusoids(T, spec.C)
    mask = attention_mask(key_pad, T)
    for l in range(spec.L):
        p = f"layers.{l}."
        if spec.norm == "post":
            x = layer_norm(x + mha(spec, P, l, x, mask), P[p + "ln1_w"], P[p + "ln1_b"])
            x = layer_norm(x + feed_forward(spec, P, l, x), P[p + "ln2_w"], P[p + "ln2_b"])
        else:
            x = x + mha(spec, P, l, layer_norm(x, P[p + "ln1_w"], P[p + "ln1_b"]), mask)
            x = x + feed_forward(spec, P, l, layer_norm(x, P[p + "ln2_w"], P[p + "ln2_b"]))
    if spec.norm == "pre":
        x = layer_norm(x, P["lnf_w"], P["lnf_b"])
    return linear(x, P["wte"] if spec.tied else P["lm_head"])


def loss(logits, targets, loss_mask, scale):
    """scale × Σ over loss-mask positions of -log softmax(logits)[target]."""
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets[..., None])[..., 0]
    return scale * (nll * loss_mask.to(logits.dtype)).sum()


# --------------------------------------------------------------------------------------------------
# Self-tests of the position encodings

def _appendix_a_forward(Q, K, V, E, gamma, P):
    """docs/cope.md §7's pure-Python forward (one head, causal mask), returning the output O."""
    L, d = len(Q), len(Q[0])
    s = 1.0 / math.sqrt(d)
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    S = [[dot(Q[i], K[j]) for j in range(L)] for i in range(L)]
    M = [[1.0 if j <= i else 0.0 for j in range(L)] for i in range(L)]
    sig = [[1 / (1 + math.exp(-s * S[i][j])) for j in range(L)] for i in range(L)]
    p = [[sum(sig[i][t] * M[i][t] for t in range(j, L)) for j in range(L)] for i in range(L)]
    c = [[min(p[i][j], P - 1) for j in range(L)] for i in range(L)]
    Z = [[sum(Q[i][k] * E[k][q] for k in range(d)) for q in range(P)] for i in range(L)]
    f = [[math.floor(x) for x in r] for r in c]
    u = [[math.ceil(x) for x in r] for r in c]
    w = [[c[i][j] - f[i][j] for j in range(L)] for i in range(L)]
    b = [[w[i][j] * Z[i][u[i][j]] + (1 - w[i][j]) * Z[i][f[i][j]] for j in range(L)] for i in range(L)]
    A = [[(s * S[i][j] + gamma * b[i][j]) if M[i][j] else -1e30 for j in range(L)] for i in range(L)]
    al = []
    for i in range(L):
        mx = max(A[i])
        e = [math.exp(a - mx) for a in A[i]]
        z = sum(e)
        al.append([x / z for x in e])
    return [[sum(al[i][j] * V[j][k] for j in range(L)) for k in range(d)] for i in range(L)]


def _head_attention(Q, K, V, E, npos, nodiv):
    """The reference's attention core (attend) on one head of a one-layer CoPE model."""
    T, dh = Q.shape
    cfg = {"model": {"n_layers": 1, "d_model": dh, "n_heads": 1, "d_ff": 4, "norm": "post",
                     "activation": "relu", "tie_embeddings": True, "block_size": T},
           "pe": {"type": "cope", "npos": npos, "nodiv": nodiv}}
    mask = attention_mask(torch.zeros(1, T), T)[0, 0]
    return attend(Spec(cfg, 3), {"layers.0.cope_table": E}, 0, Q, K, V, None, mask)


def selftest():
    torch.manual_seed(0)
    failures, count = 0, 0

    def report(name, err, tol):
        verdict(name, err <= tol, f"max abs error {err:.3g} (tolerance {tol:g})")

    def verdict(name, ok, detail):
        nonlocal failures, count
        failures += not ok
        count += 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    # CoPE head against the Appendix A pure-Python forward, both scalings, with clamping (P = 3: 6 of
    # the 21 causal entries are clamped)
    import random
    random.seed(0)
    L, d, P = 6, 4, 3
    rnd = lambda n, m, sc=0.8: [[random.gauss(0, sc) for _ in range(m)] for _ in range(n)]
    Q, K, V, E = rnd(L, d), rnd(L, d), rnd(L, d), rnd(d, P, 1.0)
    for nodiv in (False, True):
        gamma = 1.0 if nodiv else 1.0 / math.sqrt(d)
        want = torch.tensor(_appendix_a_forward(Q, K, V, E, gamma, P), dtype=torch.float64)
        t = lambda a: torch.tensor(a, dtype=torch.float64)
        got = _head_attention(t(Q), t(K), t(V), t(E), P, nodiv)
        report(f"CoPE head vs Appendix A ({'nodiv' if nodiv else 'default'})", (got - want).abs().max().item(), 1e-13)
        # autograd through the gathers, ceil/floor and clamp against central differences
        args = tuple(t(a).requires_grad_() for a in (Q, K, V, E))
        ok = torch.autograd.gradcheck(lambda *a: _head_attention(*a, P, nodiv), args, eps=1e-6, atol=1e-8,
                                      raise_exception=False)
        verdict(f"CoPE head autograd vs finite differences ({'nodiv' if nodiv else 'default'})", ok,
                "torch.autograd.gradcheck, eps 1e-6, atol 1e-8")

    # gates all 1 give positions i-j+1 (relative PE shifted by one), 0 at masked entries
    T = 5
    mask = attention_mask(torch.zeros(1, T), T)[0, 0]
    _, pos = cope_logits(torch.zeros(T, 2, dtype=torch.float64), torch.full((T, T), 60.0, dtype=torch.float64),
                         torch.zeros(2, 9, dtype=torch.float64), mask, 9)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    want = torch.where(j <= i, (i - j + 1).double(), torch.zeros(1, dtype=torch.float64))
    report("CoPE positions with all gates open are i-j+1", (pos - want).abs().max().item(), 1e-12)

    # relative term: q_i · r_{n-1-(i-j)} element by element
    n, dh = 4, 3
    q = torch.randn(T, dh, dtype=torch.float64)
    tab = torch.randn(dh, n, dtype=torch.float64)
    for beyond in ("cap", "zero"):
        R = rel_logits(q, tab, beyond)
        err = 0.0
        for a in range(T):
            for b in range(a + 1):
                m = n - 1 - (a - b)
                want = (q[a] @ tab[:, max(m, 0)]).item() if m >= 0 or beyond == "cap" else 0.0
                err = max(err, abs(R[a, b].item() - want))
        report(f"relative term, {beyond} beyond the table: R_ij = q_i . r[n-1-(i-j)]", err, 1e-14)

    # RoPE: q_i·k_j after rotation depends on i - j only
    x = torch.randn(1, dh * 2, dtype=torch.float64).expand(6, -1)
    y = torch.randn(1, dh * 2, dtype=torch.float64).expand(6, -1)
    S = rope(x, 10000.0) @ rope(y, 10000.0).t()
    err = max(abs(S[a, b].item() - S[a + 1, b + 1].item()) for a in range(5) for b in range(5))
    report("RoPE scores depend on i-j only", err, 1e-12)
    print(f"torch_reference selftest: {count - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(selftest())
