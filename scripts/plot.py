#!/usr/bin/env python3
"""Plots of runs as SVG files, written directly (standard library only).

  scripts/plot.py curves  RUN... [--split train] [--metric loss] [--logy] [-o curves.svg]
      a metric of metrics.jsonl against the training step, one line per run (e.g. the training
      loss, or --split valid --metric error)
  scripts/plot.py lengths RUN... [--split valid] [--metric M] [--step N] [--set K=V]... [-o lengths.svg]
  scripts/plot.py lengths --series POINTS.json [--xlabel X] [--ylabel Y] [-o lengths.svg]
      a metric of eval.jsonl (written by ./eval --lengths ...) against the evaluation length, one
      line per run: the paper's length-generalisation figure. The metric defaults to the task's:
      ppl for language models (task.name lm in the run's config.json), error otherwise. Points are
      keyed by their evaluation settings: only lines evaluated with exactly the --set overrides
      given here count (none given: lines evaluated without --set; run.threads is not a setting),
      so an extra evaluation with other settings (e.g. --set task.p_sparse=0.9) never replaces a
      point. Among the lines of one (split, length, settings), the latest step's (or --step's)
      last line counts. --series draws given points instead: a JSON list of {"label", "points":
      [[x, y, std or null], ...], "dashed": optional}, as scripts/reproduce.py writes for the
      length-generalisation figure (means over seeds, with ± std bars, and the paper's values dashed).

RUN is a run folder (runs/<name>); its label is the folder name unless given as LABEL=FOLDER.
Metrics: loss, error, seq_error (in %), ppl, bits_per_token, bits_per_byte: whatever the lines hold.
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
WIDTH, HEIGHT = 720, 450
LEFT, RIGHT, TOP, BOTTOM = 80, 170, 40, 60


def read_jsonl(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot.py: {path}:{n}: not JSON ({e})")
    return rows


def parse_run(arg):
    if "=" in arg and not os.path.isdir(arg):
        label, folder = arg.split("=", 1)
    else:
        folder = arg
        label = os.path.basename(os.path.normpath(arg))
    if not os.path.isdir(folder):
        sys.exit(f"plot.py: {folder}: no such run folder")
    return label, folder


def nice_ticks(lo, hi, n=6):
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1 if lo == 0 else lo + abs(lo) * 0.1
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def log_ticks(lo, hi):
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks if len(ticks) >= 2 else [lo, hi]


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:g}"


def svg_plot(series, title, xlabel, ylabel, path, logy=False, logx=False, markers=False):
    """series: list of (label, [(x, y) or (x, y, std), ...]) or (label, points, dashed). Writes an SVG
    line chart to path; a std draws a vertical bar of ± std, a dashed series a dashed line."""
    series = [(s[0], [tuple(p) + (None,) * (3 - len(p)) for p in s[1]], s[2] if len(s) > 2 else False)
              for s in series]
    pts = [(x, y + sgn * (e or 0)) for _, s, _ in series for x, y, e in s for sgn in (-1, 1)
           if y is not None and math.isfinite(y)]
    if logy:
        pts = [(x, y) for x, y in pts if y > 0]
    if logx:
        pts = [(x, y) for x, y in pts if x > 0]
    if not pts:
        sys.exit("plot.py: nothing to plot (no matching lines in the runs' files)")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if logx:
        xt = log_ticks(min(xs), max(xs))
        xlo, xhi = min(min(xs), xt[0]), max(max(xs), xt[-1])
    else:
        xt = nice_ticks(min(xs), max(xs))
        xlo, xhi = xt[0], xt[-1]
    if logy:
        lo, hi = min(ys), max(ys)
        if hi <= lo:
            hi = lo * 10
        yt = log_ticks(lo, hi)
        ylo, yhi = min(lo, yt[0]), max(hi, yt[-1])
    else:
        yt = nice_ticks(min(ys), max(ys))
        ylo, yhi = yt[0], yt[-1]
    right = max(RIGHT, 60 + int(6.6 * max(len(label) for label, _, _ in series)))  # the legend's labels fit
    width = WIDTH - RIGHT + right
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def tx(x):
        if logx:
            return LEFT + pw * (math.log(x) - math.log(xlo)) / ((math.log(xhi) - math.log(xlo)) or 1)
        return LEFT + pw * (x - xlo) / ((xhi - xlo) or 1)

    def ty(y):
        if logy:
            return TOP + ph * (1 - (math.log(y) - math.log(ylo)) / ((math.log(yhi) - math.log(ylo)) or 1))
        return TOP + ph * (1 - (y - ylo) / ((yhi - ylo) or 1))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
           f'viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT + pw / 2}" y="{TOP - 15}" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for v in xt:
        if xlo <= v <= xhi:
            x = tx(v)
            out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{fmt(v)}</text>')
    for v in yt:
        if ylo <= v <= yhi:
            y = ty(v)
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 15}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text x="18" y="{TOP + ph / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {TOP + ph / 2})">{escape(ylabel)}</text>')
    for k, (label, s, dashed) in enumerate(series):
        c = COLOURS[k % len(COLOURS)]
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        good = [(x, y, e) for x, y, e in s if y is not None and math.isfinite(y) and (not logy or y > 0)
                and (not logx or x > 0)]
        if good:
            d = " ".join(f"{tx(x):.1f},{ty(y):.1f}" for x, y, _ in good)
            out.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.8"{dash}/>')
            if markers or len(good) == 1:
                for x, y, _ in good:
                    out.append(f'<circle cx="{tx(x):.1f}" cy="{ty(y):.1f}" r="3.5" fill="{c}"/>')
            for x, y, e in good:
                if e and (not logy or y - e > 0):
                    out.append(f'<line x1="{tx(x):.1f}" y1="{ty(y - e):.1f}" x2="{tx(x):.1f}" y2="{ty(y + e):.1f}" '
                               f'stroke="{c}" stroke-width="1.2"/>')
        ly = TOP + 10 + 20 * k
        out.append(f'<line x1="{LEFT + pw + 15}" y1="{ly}" x2="{LEFT + pw + 40}" y2="{ly}" stroke="{c}" '
                   f'stroke-width="2.5"{dash}/>')
        out.append(f'<text x="{LEFT + pw + 46}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {path}")


def curves(args):
    series = []
    for arg in args.runs:
        label, folder = parse_run(arg)
        rows = read_jsonl(os.path.join(folder, "metrics.jsonl"))
        pts = {}
        for r in rows:  # a resumed run's later line for a step replaces the earlier one
            if r.get("split") == args.split and args.metric in r:
                pts[r["step"]] = r[args.metric]
        if not pts:
            print(f"plot.py: {folder}: no {args.split} lines with {args.metric}", file=sys.stderr)
        series.append((label, sorted(pts.items())))
    unit = " (%)" if args.metric in ("error", "seq_error") else ""
    svg_plot(series, args.title or f"{args.split} {args.metric}", "step", args.metric + unit, args.output,
             logy=args.logy, markers=args.split != "train")


def task_metric(folder):
    """The default metric of a run's task: ppl for a language model, error otherwise."""
    try:
        with open(os.path.join(folder, "config.json")) as f:
            name = json.load(f).get("task", {}).get("name")
    except (OSError, ValueError):
        name = None
    if name is None:
        rows = read_jsonl(os.path.join(folder, "eval.jsonl"))
        return "ppl" if any("ppl" in r for r in rows) else "error"
    return "ppl" if name == "lm" else "error"


def settings(overrides):
    """The evaluation settings of --set overrides: sorted, without run.threads (last bits only)."""
    return tuple(sorted(o for o in overrides or [] if not o.startswith("run.threads=")))


def lengths(args):
    if args.series:
        if args.runs:
            sys.exit("plot.py: lengths takes run folders or --series, not both")
        try:
            with open(args.series) as f:
                given = json.load(f)
            series = [(s["label"], [tuple(p) for p in s["points"]], bool(s.get("dashed"))) for s in given]
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f"plot.py: {args.series}: expected a JSON list of {{label, points, dashed}} ({e})")
        svg_plot(series, args.title or "against evaluation length", args.xlabel or "evaluation length",
                 args.ylabel or "", args.output, logy=args.logy, logx=args.logx, markers=True)
        return
    if not args.runs:
        sys.exit("plot.py: lengths needs run folders or --series")
    series = []
    metrics = set()
    want = settings(args.set)
    for arg in args.runs:
        label, folder = parse_run(arg)
        metric = args.metric or task_metric(folder)
        metrics.add(metric)
        rows = [r for r in read_jsonl(os.path.join(folder, "eval.jsonl"))
                if r.get("split") == args.split and metric in r]
        others = sorted({settings(r.get("set")) for r in rows} - {want})
        rows = [r for r in rows if settings(r.get("set")) == want]
        if args.step is not None:
            rows = [r for r in rows if r["step"] == args.step]
        elif rows:
            last = max(r["step"] for r in rows)
            rows = [r for r in rows if r["step"] == last]
        pts, seqs = {}, {}
        for r in rows:
            pts[r["length"]] = r[metric]
            seqs.setdefault(r["length"], set()).add(r.get("sequences"))
        for length, n in sorted(seqs.items()):
            if len(n) > 1:
                print(f"plot.py: {folder}: length {length} was evaluated on {sorted(n)} sequences; the last line counts",
                      file=sys.stderr)
        if not pts:
            told = "" if not others else " (it has lines with --set " + "; ".join(" ".join(o) or "none" for o in others) + ")"
            print(f"plot.py: {folder}: no eval.jsonl lines for split {args.split} with {metric} evaluated with "
                  f"--set {' '.join(want) or 'none'}{told}", file=sys.stderr)
        series.append((label, sorted(pts.items())))
    metric = "/".join(sorted(metrics))
    unit = " (%)" if metrics <= {"error", "seq_error"} else ""
    svg_plot(series, args.title or f"{args.split} {metric} against evaluation length",
             args.xlabel or "evaluation length (tokens)", args.ylabel or metric + unit, args.output, logy=args.logy, logx=args.logx, markers=True)


def parser():
    """The command line (the tests parse theirs with it too)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("curves", help="metric against training step (metrics.jsonl)")
    c.add_argument("runs", nargs="+")
    c.add_argument("--split", default="train")
    c.add_argument("--metric", default="loss")
    c.add_argument("--logy", action="store_true")
    c.add_argument("--title")
    c.add_argument("-o", "--output", default="curves.svg")
    c.set_defaults(fn=curves)
    l = sub.add_parser("lengths", help="metric against evaluation length (eval.jsonl)")
    l.add_argument("runs", nargs="*")
    l.add_argument("--series", help="a JSON file of points to draw instead of run folders")
    l.add_argument("--xlabel")
    l.add_argument("--ylabel")
    l.add_argument("--split", default="valid")
    l.add_argument("--metric", help="default: the task's (ppl for language models, error otherwise)")
    l.add_argument("--set", action="append", metavar="K=V",
                   help="plot the lines evaluated with these ./eval --set overrides (default: none)")
    l.add_argument("--step", type=int, help="the checkpoint step to plot (default: the latest evaluated)")
    l.add_argument("--logy", action="store_true")
    l.add_argument("--logx", action="store_true")
    l.add_argument("--title")
    l.add_argument("-o", "--output", default="lengths.svg")
    l.set_defaults(fn=lengths)
    return p


def main():
    args = parser().parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
