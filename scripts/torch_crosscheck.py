#!/usr/bin/python3
"""Cross-checks one forward and backward of the C model (a dump written by tests/tool_crosscheck_dump)
against the independent PyTorch reference (scripts/torch_reference.py): logits, loss and the gradient
of every parameter, by name. Prints the worst absolute and relative error per tensor and exits 1 on any
mismatch beyond tolerance or unusable dump (2 when torch cannot be imported).

    /usr/bin/python3 scripts/torch_crosscheck.py DUMP.bin... [--quiet]

Each dump gets a last line `NAME: ok: ...` or `NAME: FAIL: ...` (NAME: the file name without .bin), so
one process (torch imports once) can check many configurations.

Needs torch (Debian's python3-torch: run it with /usr/bin/python3).

Tolerance. Both sides compute in float64 (unit roundoff u = 1.1e-16). The model here is small (a few
thousand parameters, sums of at most a few dozen terms per value, two to four layers), so the
rounding differences between two correct implementations (other summation orders, exp/erf/sqrt from
other libraries, fused loops) stay around 1e-15..1e-12 relative. A semantic difference (a missing
term, an off-by-one position or distance, a wrong scaling, another mask) changes values by far more
than 1e-6 relative. An element passes when
    |c - ref| <= RTOL·|ref| + ATOL·S,    RTOL = 1e-9, ATOL = 1e-12,
S = the largest |ref| of the logits (for the logits), |loss| (for the loss), or the largest reference
gradient of the whole model G (for every gradient). RTOL leaves three orders of magnitude of headroom
over rounding; the absolute floor ATOL·S covers values that are small only through cancellation,
whose rounding error scales with the terms that cancelled rather than with the value. Some gradients
are zero in exact arithmetic: e.g. the attention key bias when k enters only through q·k (adding
q_i·b_k to a whole row of logits leaves the softmax unchanged); both sides then give rounding noise
(~1e-18 here), which the floor accepts, and the row says so. A reference gradient that is exactly
zero everywhere fails: the parameter would be unused (the dump tool randomises the zero-initialised
tables, so every parameter has a path to the loss).
"""
import argparse
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkpoint  # noqa: E402

RTOL = 1e-9
ATOL = 1e-12


def check(path, quiet, torch, ref):
    """Checks one dump; prints its rows and its result line; returns True when it passed."""
    label = os.path.basename(path)
    if label.endswith(".bin"):
        label = label[:-4]
    try:
        sec = checkpoint.read(path)
        cfg = checkpoint.config(sec)
        batch = json.loads(sec["batch"].decode())
        tensors = json.loads(sec["tensors"].decode())
    except (checkpoint.CheckpointError, KeyError, ValueError) as e:
        print(f"{label}: FAIL: unusable dump: {e}")
        return False
    B, T, V, scale = batch["B"], batch["T"], batch["V"], batch["scale"]
    f64 = lambda name: torch.frombuffer(bytearray(sec[name]), dtype=torch.float64)
    i32 = lambda name: torch.frombuffer(bytearray(sec[name]), dtype=torch.int32).long().view(B, T)
    u8 = lambda name: torch.frombuffer(bytearray(sec[name]), dtype=torch.uint8).view(B, T)
    params, grads = f64("params"), f64("grads")
    tokens, targets = i32("tokens"), i32("targets")
    loss_mask, key_pad = u8("loss_mask"), u8("key_pad")
    c_logits = f64("logits").view(B, T, V)
    (c_loss,) = struct.unpack("<d", sec["loss"])

    # The parameters by name: the same set, each with the size the reference expects.
    spec = ref.Spec(cfg, V)
    shapes = spec.shapes()
    dumped = {t["name"]: t for t in tensors}
    problems = [f"tensor {n} (shape {shapes[n]}) is missing from the C model" for n in sorted(set(shapes) - set(dumped))]
    problems += [f"the C model has a tensor {n} the reference does not" for n in sorted(set(dumped) - set(shapes))]
    P = {}
    for name, shape in shapes.items():
        t = dumped.get(name)
        if t is None:
            continue
        n = 1
        for d in shape:
            n *= d
        if t["size"] != n:
            problems.append(f"tensor {name}: size {t['size']} in the C model, the reference expects {shape} = {n}")
            continue
        P[name] = params[t["offset"]:t["offset"] + n].clone().view(shape).requires_grad_()
    if problems:
        for f in problems:
            print(f"  {f}")
        print(f"{label}: FAIL: the parameter layouts differ")
        return False

    logits = ref.forward(spec, P, tokens, key_pad)
    loss = ref.loss(logits, targets, loss_mask, scale)
    loss.backward()

    # The gradient scale G: the largest reference gradient of the model. It sets the absolute floor
    # of the tolerance (see the module docstring) and tells which tensors are zero up to rounding.
    G = max(p.grad.abs().max().item() for p in P.values())
    rows = []  # (what, max |ref|, worst abs, worst rel or None, ok, detail)

    def compare(what, c, r, floor):
        c, r = c.detach().reshape(-1), r.detach().reshape(-1)
        diff = (c - r).abs()
        tscale = r.abs().max().item()
        bound = RTOL * r.abs() + ATOL * floor
        ok = bool((diff <= bound).all()) and bool(torch.isfinite(c).all())
        detail, worst_rel = "", None
        if tscale > ATOL * floor:
            # the relative error shown: against |ref|, floored at 1e-3 of the tensor's largest value
            worst_rel = (diff / r.abs().clamp(min=tscale * 1e-3)).max().item()
        elif tscale > 0:
            detail = "(zero in exact arithmetic: both sides are rounding noise)"
        if not ok:
            k = int((diff - bound).nan_to_num(nan=math.inf).argmax())
            detail = f"worst at flat index {k}: C {c[k].item():.17g} vs reference {r[k].item():.17g}"
        if what.startswith("grad ") and tscale == 0.0:
            ok = False
            detail = "the reference gradient is exactly zero everywhere: this parameter is never used"
        rows.append((what, tscale, diff.max().item(), worst_rel, ok, detail))

    compare("logits", c_logits, logits, logits.abs().max().item())
    compare("loss", torch.tensor([c_loss], dtype=torch.float64), loss.reshape(1), abs(loss.item()))
    for name in sorted(P, key=lambda n: dumped[n]["offset"]):
        t = dumped[name]
        compare(f"grad {name}", grads[t["offset"]:t["offset"] + t["size"]], P[name].grad, G)

    nbad = sum(not r[4] for r in rows)
    width = max(len(r[0]) for r in rows)
    for what, tscale, wa, wr, ok, detail in rows:
        if ok and quiet:
            continue
        rel = f"{wr:9.3e}" if wr is not None else "        -"
        print(f"  {'ok  ' if ok else 'FAIL'} {what:<{width}}  max|ref| {tscale:9.3e}  worst abs {wa:9.3e}  "
              f"worst rel {rel}" + (f"  {detail}" if detail else ""))
    worst = max((r for r in rows if r[3] is not None), key=lambda r: r[3])
    summary = (f"{len(rows)} comparisons (logits, loss, {len(rows) - 2} gradients), worst relative error "
               f"{worst[3]:.1e} ({worst[0]}), worst absolute {max(r[2] for r in rows):.1e}")
    if nbad:
        print(f"{label}: FAIL: {nbad} of {len(rows)} comparisons beyond tolerance; {summary}")
        return False
    print(f"{label}: ok: {summary}")
    return True


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dumps", nargs="+", metavar="DUMP")
    ap.add_argument("--quiet", action="store_true", help="per-tensor rows only for mismatches")
    args = ap.parse_args(argv[1:])
    try:
        import torch
    except ImportError as e:
        print(f"torch_crosscheck: cannot import torch with {sys.executable} ({e}); install python3-torch "
              f"and run this with /usr/bin/python3")
        return 2
    import torch_reference as ref
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    failed = sum(not check(p, args.quiet, torch, ref) for p in args.dumps)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
