#!/usr/bin/env python3
"""Reproduces the paper's result tables: trains every position encoding an experiment compares,
evaluates each run on the splits the paper reports, and writes results/<experiment>_<scale>.md
(the paper's numbers next to ours, the settings, every difference from the paper, wall-clock times)
with SVG plots beside it.

    python3 scripts/reproduce.py EXPERIMENT [--scale cpu|paper] [--pes cope,abs,...] [--threads 2]
                                 [--runs-dir runs] [--table-only]

EXPERIMENT: flipflop, selcopy, counting (1, 3 and 5 variables: the paper's Table 3), counting_1var,
counting_3var, counting_5var (one column of it), wikitext (text LM; at the CPU scale on Tiny
Shakespeare), code, or all (flipflop, selcopy, counting in sequence: the tasks that need no data).

--scale cpu uses configs/cpu/ (minutes per run on 2 cores), paper configs/ (the paper's settings,
as far as they are known). Each run is runs/<scale>_<config stem>, e.g. runs/cpu_flipflop_cope:
a finished run is not trained again, an unfinished one is resumed (--resume), so the command can
be interrupted (Ctrl-C) and rerun. An evaluation already in the run's eval.jsonl for its latest
step is not repeated. --table-only trains and evaluates nothing and writes the table from what the
runs hold (unfinished runs are marked). The language models need their data first:
sh scripts/fetch_data.sh tinyshakespeare (CPU scale) or wikitext-103 (paper scale), and
python3 scripts/build_code_corpus.py (writes data/code).

The paper's numbers are those of the project's CoPE reference digest, §6 (exact from the paper's
tables; the length-generalisation values are read off its figure, about ±0.03). Standard library
only; ./train and ./eval must be built (make). Ctrl-C or SIGTERM is passed to the running ./train,
which checkpoints; rerunning the command resumes.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import checkpoint  # noqa: E402  (scripts/checkpoint.py)
import make_configs  # noqa: E402  (the experiment table: which PEs each experiment compares)

PE_NAMES = {
    "none": "No PE", "abs": "Absolute PE", "rel": "Relative PE", "rope": "RoPE", "cope": "CoPE",
    "cope+rel": "CoPE + Relative", "cope+rope": "CoPE + RoPE", "abs+rel": "Absolute + Relative",
    "alibi": "ALiBi (ours, not in the paper)",
}

# Per experiment: the config groups it trains (one per column group), the columns (label, group,
# split), the metric, and the paper's numbers per PE in column order (docs/experiments.md).
# Length generalisation (LM): evaluation windows at these multiples of the training context.
EXPERIMENTS = {
    "flipflop": {
        "title": "Flip-flop language modelling",
        "source": "paper §5, first table (docs/experiments.md §2.3)",
        "groups": ["flipflop"],
        "columns": [("In-dist", "flipflop", "test"), ("OOD", "flipflop", "sparse")],
        "metric": "error",
        "metric_doc": "test error in % (lower is better): wrong predictions of the bit after each read "
                      "instruction r, over all reads of the split. In-dist is FFL(0.8) (the training "
                      "distribution), OOD the sparse split FFL(0.98) (long write-to-read gaps; our "
                      "reading of the paper's OOD).",
        "paper": {"abs": ["6.8", "21.7"], "rope": ["1.8", "20.3"], "cope": ["0.0", "4.9"]},
    },
    "selcopy": {
        "title": "Selective copy",
        "source": "paper §5, second table (docs/experiments.md §3.3)",
        "groups": ["selcopy"],
        "columns": [("In-dist", "selcopy", "test"), ("OOD dense", "selcopy", "dense"),
                    ("OOD sparse", "selcopy", "sparse")],
        "metric": "error",
        "metric_doc": "test error in % (lower is better) per copied token. In-dist has the training "
                      "number of blanks, dense half of it, sparse twice it (the paper: 256, 128, 512).",
        "paper": {"abs": ["16.9", "25.6", "85.2"], "rope": ["40.1", "100.0", "100.0"], "cope": ["0.0", "0.0", "0.0"]},
    },
    "counting": {
        "title": "Counting",
        "source": "paper §5, Table 3 (docs/experiments.md §4.5)",
        "groups": ["counting_1var", "counting_3var", "counting_5var"],
        "columns": [("1 var", "counting_1var", "test"), ("3 var", "counting_3var", "test"),
                    ("5 var", "counting_5var", "test")],
        "metric": "error",
        "metric_doc": "test error in % (lower is better): wrong answers (the value printed), one per "
                      "sample. The paper averages 3 seeds; we run one (the seed of the official run.sh).",
        "paper": {"abs": ["5.3", "67.6", "71.5"], "rel": ["1.1", "17.8", "22.4"], "cope": ["0.0", "1.2", "7.4"]},
    },
    "wikitext": {
        "title": "Language modelling on text",
        "source": "paper §5, Wikitext-103 table and the length-generalisation figure (docs/experiments.md §5.2, §5.3)",
        "groups": ["wikitext"],
        "columns": [("Val. PPL", "wikitext", "valid"), ("Test PPL", "wikitext", "test")],
        "metric": "ppl",
        "metric_doc": "perplexity (lower is better) over the whole split, cut into consecutive "
                      "non-overlapping windows of the training context. Ours is per byte (byte-level "
                      "tokens), the paper's per GPT-2 BPE token: only the ranking compares.",
        "paper": {"abs": ["23.96", "24.87"], "rel": ["22.90", "23.81"], "cope": ["22.55", "23.46"],
                  "cope+rel": ["22.31", "23.23"]},
        "paper_params": {"abs": 124.4, "rel": 123.7, "cope": 123.7, "cope+rel": 123.7},
        "lengths": {
            "multiples": [1, 1.5, 2, 2.5],
            "split": "valid",
            # left panel of the figure (trained at T = 1024; T' = 1024, 1536, 2048, 2560), read off the plot
            "paper": {"Relative PE": ["22.90", "≈22.57", "≈23.18", "≈24.16"],
                      "Relative-capped": ["22.90", "≈22.31", "≈22.09", "≈21.96"],
                      "CoPE": ["22.55", "≈21.96", "≈21.70", "≈21.56"]},
            "paper_T": 1024,
        },
    },
    "code": {
        "title": "Code modelling",
        "source": "paper §5, code table (docs/experiments.md §6.2)",
        "groups": ["code"],
        "columns": [("Test PPL", "code", "test")],
        "metric": "ppl",
        "metric_doc": "test perplexity (lower is better), per byte here; the paper's tokenizer and data "
                      "are unknown, so only the ranking compares. Our validation perplexity is in the "
                      "runs table.",
        "paper": {"abs": ["4.7"], "rope": ["4.1"], "cope": ["3.9"], "cope+rope": ["4.0"]},
        "paper_params": {"abs": 20.8, "rope": 19.8, "cope": 20.8, "cope+rope": 20.8},
    },
}
for _i, _column in enumerate(EXPERIMENTS["counting"]["columns"]):  # counting_1var, ...: one column each
    EXPERIMENTS[_column[1]] = dict(EXPERIMENTS["counting"], groups=[_column[1]], columns=[_column],
                                   paper={pe: [v[_i]] for pe, v in EXPERIMENTS["counting"]["paper"].items()})
ALL = ["flipflop", "selcopy", "counting"]
DATA_HINTS = {
    "data/tinyshakespeare": "sh scripts/fetch_data.sh tinyshakespeare",
    "data/wikitext-103": "sh scripts/fetch_data.sh wikitext-103",
    "data/code": "python3 scripts/build_code_corpus.py (writes data/code)",
}


class Stop(Exception):
    """A run or evaluation failed, or the user interrupted: stop with this message and status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def stem(pe):
    return pe.replace("+", "_")


def config_path(scale, group, pe):
    folder = "configs/cpu" if scale == "cpu" else "configs"
    return os.path.join(folder, f"{group}_{stem(pe)}.json")


def run_name(scale, group, pe):
    return f"{scale}_{group}_{stem(pe)}"


def read_jsonl(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    return rows


def latest_checkpoint(run_dir):
    """(step, path) of the run's latest checkpoint, or (None, None)."""
    try:
        with open(os.path.join(run_dir, "latest")) as f:
            name = f.read().strip()
    except FileNotFoundError:
        return None, None
    m = re.fullmatch(r"ckpt_(\d+)\.bin", name)
    path = os.path.join(run_dir, name)
    if not m or not os.path.exists(path):
        return None, None
    return int(m.group(1)), path


def train_state(path):
    """(step, tokens, elapsed seconds) from a checkpoint's train_state section (src/checkpoint.h)."""
    step, tokens, elapsed = struct.unpack_from("<qqd", checkpoint.read(path)["train_state"])
    return step, tokens, elapsed


CHILD = None  # the ./train or ./eval running now


def forward_signal(signum, frame):
    """Ctrl-C or SIGTERM: pass it to the child once (./train then writes a checkpoint and exits 130
    or 143; a second Ctrl-C stops it at once) and stop once it has exited."""
    if CHILD is not None and CHILD.poll() is None:
        CHILD.send_signal(signum)
    raise KeyboardInterrupt


def run_command(cmd, what):
    """Runs cmd in the repository root, output straight to the terminal. The child has its own
    session, so a Ctrl-C reaches it only through forward_signal, exactly once."""
    global CHILD
    print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
    CHILD = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        rc = CHILD.wait()
    except KeyboardInterrupt:
        CHILD.wait()  # let it write its checkpoint
        raise Stop(f"{what}: interrupted; rerun the same command to continue", 130)
    finally:
        CHILD = None
    return rc


class Run:
    """One (scale, group, pe): its config, its run folder and what it holds."""

    def __init__(self, scale, group, pe, runs_dir):
        self.scale, self.group, self.pe = scale, group, pe
        self.config_path = config_path(scale, group, pe)
        self.name = run_name(scale, group, pe)
        self.dir = os.path.join(runs_dir, self.name)
        full = os.path.join(ROOT, self.config_path)
        if not os.path.exists(full):
            raise Stop(f"{self.config_path}: no such config (python3 scripts/make_configs.py writes it)")
        with open(full) as f:
            self.config = json.load(f)
        self.steps = self.config["train"]["steps"]

    def abs_dir(self):
        return os.path.join(ROOT, self.dir)

    def step(self):
        return latest_checkpoint(self.abs_dir())[0]

    def started(self):
        return os.path.exists(os.path.join(self.abs_dir(), "config.json"))

    def finished(self):
        s = self.step()
        return s is not None and s >= self.steps

    def check_data(self):
        """A language model's text must be there before ./train (which would name the file too)."""
        task = self.config["task"]
        paths = ([task["text_file"]] if task.get("text_file") else
                 [os.path.join(task["data_dir"], task.get(k, d)) for k, d in
                  (("train_file", "train.txt"), ("valid_file", "valid.txt"), ("test_file", "test.txt"))]
                 if task.get("data_dir") else [])
        missing = [p for p in paths if not os.path.exists(os.path.join(ROOT, p))]
        if missing:
            hint = DATA_HINTS.get(os.path.normpath(os.path.dirname(missing[0])), "see data/README.md")
            raise Stop(f"{self.name}: {missing[0]} is missing: {hint}")

    def train(self, threads, runs_dir):
        if self.finished():
            print(f"{self.name}: finished ({self.steps} steps), not trained again")
            return
        cmd = ["./train", self.config_path, "--set", f"run.name={self.name}", "--set", f"run.out_dir={runs_dir}",
               "--set", f"run.threads={threads}"]
        if self.started():
            if self.step() is None:
                raise Stop(f"{self.dir} holds a run with no checkpoint (it stopped before the first one): "
                           f"remove the folder and rerun")
            cmd.append("--resume")
        rc = run_command(cmd, self.name)
        if rc != 0:
            raise Stop(f"{self.name}: ./train exited with status {rc}", 130 if rc in (130, 143) else 1)

    def eval_rows(self):
        return read_jsonl(os.path.join(self.abs_dir(), "eval.jsonl"))

    def find_eval(self, split, length=None):
        """The latest eval.jsonl line for the latest step, this split (and length), evaluated on the
        whole split with no overrides but the thread count and the length."""
        step = self.step()
        found = None
        for row in self.eval_rows():
            if row.get("step") != step or row.get("split") != split:
                continue
            if length is not None and row.get("length") != length:
                continue
            if any(not s.startswith(("run.threads=", "task.eval_length=")) for s in row.get("set", [])):
                continue
            found = row
        return found

    def evaluate(self, splits, lengths, threads):
        """./eval on the splits (at the run's own length, or at each of lengths) still missing."""
        if lengths:
            for split in splits:
                missing = [n for n in lengths if self.find_eval(split, n) is None]
                if missing:
                    self._eval([split], missing, threads)
        else:
            missing = [s for s in splits if self.find_eval(s) is None]
            if missing:
                self._eval(missing, None, threads)

    def _eval(self, splits, lengths, threads):
        cmd = ["./eval", self.dir, "--split", ",".join(splits), "--set", f"run.threads={threads}"]
        if lengths:
            cmd += ["--lengths", ",".join(str(n) for n in lengths)]
        rc = run_command(cmd, self.name)
        if rc == 3:
            print(f"{self.name}: some lengths were refused (see above); the table says so")
        elif rc != 0:
            raise Stop(f"{self.name}: ./eval exited with status {rc}")

    def summary(self):
        """What the runs table shows: status, parameters, wall-clock, ms/step, threads."""
        step, path = latest_checkpoint(self.abs_dir())
        out = {"step": step, "params": None, "elapsed": None, "threads": None, "tokens_per_s": None}
        if path:
            out["elapsed"] = train_state(path)[2]
        log = os.path.join(self.abs_dir(), "log.txt")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
            m = re.search(r"model: (\d+) parameters", text)
            if m:
                out["params"] = int(m.group(1))
            threads = re.findall(r"^threads: (\d+)", text, re.M)
            if threads:
                out["threads"] = int(threads[-1])
        train_rows = [r for r in read_jsonl(os.path.join(self.abs_dir(), "metrics.jsonl"))
                      if r.get("split") == "train" and "tokens_per_s" in r]
        if train_rows:
            out["tokens_per_s"] = sum(r["tokens_per_s"] for r in train_rows) / len(train_rows)
        return out


def fmt_num(v):
    return "—" if v is None else f"{v:.2f}"


def fmt_duration(s):
    if s is None:
        return "—"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def lm_lengths(run, spec):
    T = run.config["model"]["block_size"]
    return [int(round(T * m)) for m in spec["multiples"]]


def own_length(run, exp):
    """The eval.jsonl length of the table's columns: the training context for the length-generalisation
    experiment (its lines at other lengths must not count), else any (each split has one length)."""
    return lm_lengths(run, exp["lengths"])[0] if "lengths" in exp else None


def settings_lines(config):
    """The config's sections as 'key value' lists, one line per section."""
    lines = []
    for section in ("model", "pe", "task", "train", "run"):
        items = config.get(section)
        if items:
            lines.append(f"- `{section}`: " + ", ".join(f"{k} {json.dumps(v)}" for k, v in items.items()))
    return lines


def ranking(values):
    """PE names ordered best (lowest) first, ties (equal to the 2 decimals shown) joined by '='."""
    vals = sorted((round(v, 2), pe) for pe, v in values.items() if v is not None)
    out = []
    for i, (v, pe) in enumerate(vals):
        sep = "" if i == 0 else (" = " if abs(v - vals[i - 1][0]) < 1e-9 else " < ")
        out.append(sep + PE_NAMES.get(pe, pe))
    return "".join(out) if out else "—"


def write_table(name, scale, pes, runs_dir, command):
    exp = EXPERIMENTS[name]
    groups = exp["groups"]
    runs = {(g, pe): Run(scale, g, pe, runs_dir) for g in groups for pe in pes}
    results_dir = os.path.join(ROOT, "results")
    os.makedirs(results_dir, exist_ok=True)
    base = f"{name}_{scale}"
    metric = exp["metric"]
    lines = [f"# {exp['title']} — {'CPU' if scale == 'cpu' else 'paper'} scale", ""]
    lines += [f"Written by `{command}` on {datetime.date.today().isoformat()} "
              f"({platform.machine()}, {os.cpu_count()} cores). The paper's numbers: {exp['source']}.", ""]

    # ---- main table: paper next to ours, per column
    ours = {}
    for pe in pes:
        for label, g, split in exp["columns"]:
            run = runs[(g, pe)]
            row = run.find_eval(split, own_length(run, exp))
            ours[(pe, label)] = row.get(metric) if row else None
    unfinished = {pe for (g, pe), r in runs.items() if not r.finished()}
    header = ["PE"]
    for label, _, _ in exp["columns"]:
        header += [f"{label}: paper", f"{label}: ours"]
    if "paper_params" in exp:
        header += ["params (M): paper", "params (M): ours"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {}
    for label, _, _ in exp["columns"]:
        vals = [round(ours[(pe, label)], 2) for pe in pes if ours[(pe, label)] is not None]
        best[label] = min(vals) if vals else None
    for pe in sorted(set(pes) | set(exp["paper"]), key=lambda p: list(PE_NAMES).index(p)):
        cells = [PE_NAMES.get(pe, pe) + (" †" if pe in unfinished else "")]
        for i, (label, _, _) in enumerate(exp["columns"]):
            p = exp["paper"].get(pe)
            cells.append(p[i] if p else "not in the paper")
            if pe not in pes:
                cells.append("not run")
                continue
            v = ours[(pe, label)]
            text = fmt_num(v)
            cells.append(f"**{text}**" if v is not None and round(v, 2) == best[label] else text)
        if "paper_params" in exp:
            cells.append(str(exp["paper_params"].get(pe, "—")))
            s = runs[(groups[0], pe)].summary() if pe in pes else {"params": None}
            cells.append(f"{s['params'] / 1e6:.2f}" if s["params"] else "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Metric: {exp['metric_doc']} Bold: our best per column."]
    if unfinished:
        lines.append("† unfinished run (its latest checkpoint is shown; rerun the command to finish it).")
    lines += ["", "Ranking, best first:", ""]
    for i, (label, _, _) in enumerate(exp["columns"]):
        paper_vals = {pe: float(v[i]) for pe, v in exp["paper"].items()}
        our_vals = {pe: ours[(pe, label)] for pe in pes}
        lines.append(f"- {label}: paper {ranking(paper_vals)}; ours {ranking(our_vals)}")

    # ---- length generalisation (LM)
    if "lengths" in exp:
        spec = exp["lengths"]
        run0 = runs[(groups[0], pes[0])]
        Ls = lm_lengths(run0, spec)
        lines += ["", f"## Length generalisation ({spec['split']} perplexity at context T')", ""]
        head = ["", *[f"T' = {m}×T" for m in spec["multiples"]]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, vals in spec["paper"].items():
            lines.append("| " + " | ".join([f"paper (T = {spec['paper_T']}): {label}"] + vals) + " |")
        for pe in pes:
            run = runs[(groups[0], pe)]
            cells = [f"ours (T = {Ls[0]}): {PE_NAMES.get(pe, pe)}" + (" (capped)" if "rel" in pe and
                                                                         run.config["pe"].get("rel_beyond", "cap" if run.config["pe"].get("rel_capped") else "refuse") == "cap" else "")]
            for n in lm_lengths(run, spec):
                row = run.find_eval(spec["split"], n)
                if row:
                    cells.append(fmt_num(row.get(metric)))
                elif run.config["pe"]["type"] in ("abs", "abs+rel") and n > run.config["model"]["block_size"]:
                    cells.append("refused (learned table)")
                else:
                    cells.append("—")
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "The paper's values beyond T' = T are read off its figure (about ±0.03). Our relative "
                      "PE is relative-capped (pe.rel_beyond \"cap\": distances beyond the table reuse its last entry), "
                      "the paper's middle curve; learned absolute PE has no positions beyond its table, so "
                      "longer windows are refused. Lengths plot: "
                      f"[{base}_lengths.svg]({base}_lengths.svg)."]

    # ---- runs
    lines += ["", "## Runs", "",
              "| PE | run | config | steps | parameters | training wall-clock | ms/step | tokens/s | threads |",
              "|---|---|---|---|---|---|---|---|---|"]
    for (g, pe), run in runs.items():
        s = run.summary()
        steps = "not started" if s["step"] is None else (f"{s['step']}" if s["step"] >= run.steps
                                                         else f"{s['step']} of {run.steps}")
        ms = f"{1000 * s['elapsed'] / s['step']:.0f}" if s["elapsed"] and s["step"] else "—"
        tps = f"{s['tokens_per_s']:.0f}" if s["tokens_per_s"] else "—"
        lines.append(f"| {PE_NAMES.get(pe, pe)}{'' if len(groups) == 1 else ' (' + g + ')'} | `{run.dir}` | "
                     f"`{run.config_path}` | {steps} | {s['params'] or '—'} | {fmt_duration(s['elapsed'])} | "
                     f"{ms} | {tps} | {s['threads'] or '—'} |")
    lines += ["", "Training wall-clock is the trainer's own clock summed over restarts (it includes the "
                  "periodic evaluations, not the final ./eval)."]
    if metric == "ppl":
        lines += ["", "Validation and test perplexity at the training context, per run:", ""]
        for (g, pe), run in runs.items():
            v, t = (run.find_eval(split, own_length(run, exp)) or {} for split in ("valid", "test"))
            bpb = t.get("bits_per_byte")
            lines.append(f"- {PE_NAMES.get(pe, pe)}: valid {fmt_num(v.get('ppl'))}, test {fmt_num(t.get('ppl'))}" +
                         (f" ({bpb:.3f} bits per byte)" if bpb else ""))

    # ---- settings and differences
    lines += ["", "## Settings and differences from the paper", ""]
    for g in groups:
        cfg = runs[(g, pes[0])].config
        lines += [f"`{config_path(scale, g, '<pe>')}` (the PE variants differ only in `pe`; "
                  f"`{runs[(g, pes[0])].config_path}` shown):", ""]
        lines += settings_lines(cfg) + ["", "Its notes:", "", "```"] + cfg.get("notes", []) + ["```", ""]
    if scale == "cpu":
        lines += ["The CPU scale differs from the paper scale in the keys listed in the notes; the paper-scale "
                  "notes then say how the paper scale itself relates to the paper (what the paper gives, what "
                  "is ours)."]
    lines += ["Every run: one seed (`run.seed`), evaluation with `./eval` on the latest checkpoint at the end "
              "of training (no best-checkpoint selection, as the official code)."]

    # ---- plots
    lines += ["", "## Curves", ""]
    for g in groups:
        suffix = "" if len(groups) == 1 else "_" + g.split("_", 1)[1]
        folders = [f"{PE_NAMES.get(pe, pe)}={runs[(g, pe)].abs_dir()}" for pe in pes
                   if os.path.exists(os.path.join(runs[(g, pe)].abs_dir(), "metrics.jsonl"))]
        if not folders:
            continue
        valid_metric = "error" if metric == "error" else "loss"
        plots = [(f"{base}{suffix}_curves.svg", ["--split", "train", "--metric", "loss", "--logy"],
                  "training loss"),
                 (f"{base}{suffix}_valid.svg", ["--split", "valid", "--metric", valid_metric],
                  "validation " + ("error %" if metric == "error" else "loss"))]
        for fname, args, what in plots:
            cmd = [sys.executable, os.path.join(HERE, "plot.py"), "curves", *folders, *args, "--title",
                   f"{exp['title']} ({g}, {scale} scale): {what}", "-o", os.path.join(results_dir, fname)]
            if subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode == 0:
                lines.append(f"- {what}{' (' + g + ')' if suffix else ''}: [{fname}]({fname})")
    if "lengths" in exp:
        folders = [f"{PE_NAMES.get(pe, pe)}={runs[(groups[0], pe)].abs_dir()}" for pe in pes
                   if runs[(groups[0], pe)].eval_rows()]
        if folders:
            cmd = [sys.executable, os.path.join(HERE, "plot.py"), "lengths", *folders, "--split",
                   exp["lengths"]["split"], "--metric", "ppl", "--title",
                   f"{exp['title']} ({scale} scale): {exp['lengths']['split']} perplexity vs context",
                   "-o", os.path.join(results_dir, f"{base}_lengths.svg")]
            subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    path = os.path.join(results_dir, base + ".md")
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print("wrote", os.path.relpath(path, os.getcwd()))


def reproduce(name, args, command):
    exp = EXPERIMENTS[name]
    known = make_configs.EXPERIMENTS[exp["groups"][0]]["pes"]
    pes = known if not args.pes else args.pes.split(",")
    for pe in pes:
        if pe not in known:
            raise Stop(f"--pes: {name} compares {', '.join(known)}; \"{pe}\" is not one of them", 2)
    if not args.table_only:
        for g in exp["groups"]:
            for pe in pes:
                run = Run(args.scale, g, pe, args.runs_dir)
                if not run.finished():
                    run.check_data()
                run.train(args.threads, args.runs_dir)
                splits = [s for _, gg, s in exp["columns"] if gg == g]
                if exp["metric"] == "ppl" and "valid" not in splits:
                    splits.append("valid")  # the runs table shows it
                if "lengths" in exp:
                    # the length-generalisation split at every length, the others at the training context
                    spec = exp["lengths"]
                    lengths = lm_lengths(run, spec)
                    run.evaluate([spec["split"]], lengths, args.threads)
                    run.evaluate([s for s in splits if s != spec["split"]], lengths[:1], args.threads)
                else:
                    run.evaluate(splits, None, args.threads)
    write_table(name, args.scale, pes, args.runs_dir, command)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("experiment", choices=list(EXPERIMENTS) + ["all"])
    ap.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    ap.add_argument("--pes", help="comma-separated subset of the experiment's PEs (default: all it compares)")
    ap.add_argument("--threads", type=int, default=2, help="run.threads of ./train and ./eval (default 2)")
    ap.add_argument("--runs-dir", default="runs",
                    help="folder of the run folders, relative to the repository root (default runs)")
    ap.add_argument("--table-only", action="store_true", help="only write the table from the runs as they are")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    if not args.table_only:
        for prog in ("train", "eval"):
            if not os.access(os.path.join(ROOT, prog), os.X_OK):
                sys.exit(f"reproduce: ./{prog} is not built (run make)")
    names = ALL if args.experiment == "all" else [args.experiment]
    if args.experiment == "all" and args.pes:
        ap.error("--pes applies to one experiment, not to all")
    command = "python3 scripts/reproduce.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    start = time.time()
    try:
        for name in names:
            reproduce(name, args, command)
    except Stop as e:
        print(f"reproduce: {e}", file=sys.stderr)
        sys.exit(e.status)
    except KeyboardInterrupt:
        print("reproduce: interrupted; rerun the same command to continue", file=sys.stderr)
        sys.exit(130)
    print(f"reproduce: done in {fmt_duration(time.time() - start)}")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, forward_signal)
    signal.signal(signal.SIGTERM, forward_signal)
    main()
