#!/usr/bin/env python3
"""Reproduces the paper's result tables: trains every position encoding an experiment compares,
evaluates each run on the splits the paper reports, and writes results/<experiment>_<scale>.md
(the paper's numbers next to ours, the settings, every difference from the paper, wall-clock times)
with SVG plots beside it.

    python3 scripts/reproduce.py EXPERIMENT [--scale cpu|paper] [--pes cope,abs,...] [--threads 2]
                                 [--runs-dir runs] [--table-only] [--seeds N] [--set K=V]...
                                 [--results-dir results]

EXPERIMENT: flipflop, selcopy, counting (1, 3 and 5 variables: the paper's Table 3), counting_1var,
counting_3var, counting_5var (one column of it), wikitext (text LM; at the CPU scale on Tiny
Shakespeare), code, or all (flipflop, selcopy, counting in sequence: the tasks that need no data);
lengths_text, lengths_flipflop: the length-generalisation figure (LENGTH_EXPERIMENTS below).
--seeds N trains N seeds per PE (Run says how) and reports mean ± std; --set passes an override to
every ./train (smoke tests; the table then says it is not a result).

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
import shutil
import signal
import statistics
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
                      "sample. The paper averages 3 seeds.",
        "paper": {"abs": ["5.3", "67.6", "71.5"], "rel": ["1.1", "17.8", "22.4"], "cope": ["0.0", "1.2", "7.4"]},
    },
    "wikitext": {
        "title": "Language modelling on text",
        "source": "paper §5, Wikitext-103 table and the length-generalisation figure (docs/experiments.md §5.2, §5.3)",
        "groups": ["wikitext"],
        "columns": [("Val. PPL", "wikitext", "valid"), ("Test PPL", "wikitext", "test")],
        "metric": "ppl",
        "metric_doc": "perplexity (lower is better) over the whole split, cut into consecutive "
                      "non-overlapping windows of the training context. Ours is per token of the config's "
                      "tokenizer (the paper scale: GPT-2's BPE, as the paper; the CPU scale: a BPE of "
                      "1024 ids trained on its text, so only the ranking compares), the paper's per "
                      "GPT-2 BPE token.",
        "paper": {"abs": ["23.96", "24.87"], "rel": ["22.90", "23.81"], "cope": ["22.55", "23.46"],
                  "cope+rel": ["22.31", "23.23"]},
        "paper_params": {"abs": 124.4, "rel": 123.7, "cope": 123.7, "cope+rel": 123.7},
    },
    "code": {
        "title": "Code modelling",
        "source": "paper §5, code table (docs/experiments.md §6.2)",
        "groups": ["code"],
        "columns": [("Test PPL", "code", "test")],
        "metric": "ppl",
        "metric_doc": "test perplexity (lower is better), per token of a BPE trained on the corpus here; "
                      "the paper's tokenizer and data "
                      "are unknown, so only the ranking compares. Our validation perplexity is in the "
                      "runs table.",
        "paper": {"abs": ["4.7"], "rope": ["4.1"], "cope": ["3.9"], "cope+rope": ["4.0"]},
        "paper_params": {"abs": 20.8, "rope": 19.8, "cope": 20.8, "cope+rope": 20.8},
    },
}
for _i, _column in enumerate(EXPERIMENTS["counting"]["columns"]):  # counting_1var, ...: one column each
    EXPERIMENTS[_column[1]] = dict(EXPERIMENTS["counting"], groups=[_column[1]], columns=[_column],
                                   paper={pe: [v[_i]] for pe, v in EXPERIMENTS["counting"]["paper"].items()})

# The length-generalisation figure (paper §5, its third figure; docs/experiments.md §5.3): models
# trained at context T, evaluated at multiples of T. Each curve: (key, label, the config's PE, the
# training variant or None, the ./eval --set overrides). A variant trains its own run folder from the
# PE's config with extra ./train --set overrides ({5T}: five times the training context). pe.rel_beyond
# does not change training while every distance is inside the table (the trained models of "refuse",
# "zero" and "cap" are the same bits), so the relative readings beyond the table are ./eval overrides
# of one run; "a table larger than the training length" needs its own training run.
REL_ZERO = ("rel_zero", "Relative PE, zero beyond the table (official code)", "rel", None,
            ["pe.rel_beyond=zero"])
REL_TABLE = ("rel_table", "Relative PE, table of 5T (entries beyond T untrained)", "rel",
             ("table5x", ["pe.rel_max_distance={5T}", "pe.rel_beyond=refuse"]), [])
REL_CAP = ("rel_cap", "Relative-capped", "rel", None, [])  # the configs' rel_beyond is "cap"
LENGTH_EXPERIMENTS = {
    "lengths_text": {
        "title": "Length generalisation of the text language model",
        "source": "paper §5, third figure, its two panels trained at T = 1024 and T = 512 (docs/experiments.md §5.3; "
                  "read off the plot, ±0.03)",
        "group": "wikitext", "split": "valid", "metric": "ppl",
        "multiples": [1, 1.5, 2, 2.5, 3, 4, 5],
        "curves": [("abs", "Absolute PE", "abs", None, []), REL_ZERO, REL_TABLE, REL_CAP,
                   ("cope", "CoPE", "cope", None, []),
                   ("cope_rel", "CoPE + Relative (capped)", "cope+rel", None, [])],
        "metric_doc": "validation perplexity (lower is better) over the whole split, cut into consecutive "
                      "non-overlapping windows of T' tokens, each from an empty context (README, Evaluation).",
        # the figure's two panels; None: off its scale (the T = 512 panel's relative PE beyond 2T, > 25.5)
        "paper": [{"T": 1024, "multiples": [1, 1.5, 2, 2.5],
                   "curves": {"rel_zero": [22.90, 22.57, 23.18, 24.16], "rel_cap": [22.90, 22.31, 22.09, 21.96],
                              "cope": [22.55, 21.96, 21.70, 21.56]}},
                  {"T": 512, "multiples": [1, 2, 3, 4, 5],
                   "curves": {"rel_zero": [24.14, 24.33, None, None, None],
                              "rel_cap": [24.14, 22.87, 22.56, 22.62, 22.80],
                              "cope": [23.69, 22.48, 22.13, 22.05, 22.07]}}],
        "paper_off_scale": "off the figure's scale (> 25.5)",
    },
    "lengths_flipflop": {
        "title": "Length generalisation on flip-flop",
        "source": "not in the paper (its figure is for text); ours, with the text figure's encodings",
        "group": "flipflop", "split": "test", "metric": "error",
        "multiples": [1, 1.5, 2, 3, 4, 5],
        "curves": [("abs", "Absolute PE", "abs", None, []), REL_ZERO, REL_TABLE, REL_CAP,
                   ("cope", "CoPE", "cope", None, []),
                   ("cope_rel", "CoPE + Relative (capped)", "cope",
                    ("rel", ["pe.type=cope+rel", "pe.rel_beyond=cap"]), [])],
        "metric_doc": "test error in % (lower is better) on FFL(0.8) sequences of T' tokens (the "
                      "training distribution, longer).",
    },
}
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


def parse_set(text):
    """(section, key, value) of a --set K=V override; the value as ./train reads it (JSON, else a string)."""
    key, sep, value = text.partition("=")
    if not sep or key.count(".") != 1:
        raise Stop(f"--set {text}: expected section.key=value (e.g. train.steps=20)", 2)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return (*key.split("."), parsed)


def eval_settings(overrides):
    """The settings an eval.jsonl line was evaluated with: its --set overrides, sorted, without the
    thread count (last bits only) and the evaluation length (a column of its own)."""
    return tuple(sorted(o for o in overrides or [] if not o.startswith(("run.threads=", "task.eval_length="))))


class Run:
    """One (scale, group, pe, seed): its config, its run folder and what it holds. Seed k > 0 trains
    with run.seed = the config's seed + k into <name>_s<k>; seed 0 is the config's own seed and the
    single-seed folder, so --seeds 3 reuses a finished single-seed run. A variant (the length
    experiments) trains the config with extra --set overrides into <name>_<suffix>. user_sets are the
    --set overrides of the command (smoke tests), given to ./train."""

    def __init__(self, scale, group, pe, runs_dir, seed=0, variant=None, user_sets=()):
        self.scale, self.group, self.pe, self.seed_index = scale, group, pe, seed
        self.config_path = config_path(scale, group, pe)
        full = os.path.join(ROOT, self.config_path)
        if not os.path.exists(full):
            raise Stop(f"{self.config_path}: no such config (python3 scripts/make_configs.py writes it)")
        with open(full) as f:
            self.config = json.load(f)
        self.base_seed = self.config.get("run", {}).get("seed", 1)  # ./train's default run.seed is 1
        T = self.config["model"]["block_size"]
        self.sets = [v.replace("{5T}", str(5 * T)) for v in (variant[1] if variant else [])]
        if seed:
            self.sets.append(f"run.seed={self.base_seed + seed}")
        self.expected = self.with_sets(self.sets)  # what the run's config.json holds without user_sets
        self.sets += list(user_sets)
        self.config = self.with_sets(self.sets)
        self.name = (run_name(scale, group, pe) + (f"_{variant[0]}" if variant else "") +
                     (f"_s{seed}" if seed else ""))
        self.dir = os.path.join(runs_dir, self.name)
        self.steps = self.config["train"]["steps"]

    def with_sets(self, sets):
        """The config file's contents with the --set overrides applied."""
        config = json.loads(json.dumps(self.config))
        for text in sets:
            section, key, value = parse_set(text)
            config.setdefault(section, {})[key] = value
        return config

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
        for text in self.sets:
            cmd += ["--set", text]
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

    def find_eval(self, split, length=None, settings=()):
        """The latest eval.jsonl line for the latest step, this split (and length), evaluated on the
        whole split with exactly these --set overrides (besides the thread count and the length)."""
        step = self.step()
        want = eval_settings(settings)
        found = None
        for row in self.eval_rows():
            if row.get("step") != step or row.get("split") != split:
                continue
            if length is not None and row.get("length") != length:
                continue
            if eval_settings(row.get("set")) != want:
                continue
            found = row
        return found

    def evaluate(self, splits, lengths, threads, settings=()):
        """./eval on the splits (at the run's own length, or at each of lengths) still missing."""
        if lengths:
            for split in splits:
                missing = [n for n in lengths if self.find_eval(split, n, settings) is None]
                if missing:
                    self._eval([split], missing, threads, settings)
        else:
            missing = [s for s in splits if self.find_eval(s, None, settings) is None]
            if missing:
                self._eval(missing, None, threads, settings)

    def _eval(self, splits, lengths, threads, settings):
        cmd = ["./eval", self.dir, "--split", ",".join(splits), "--set", f"run.threads={threads}"]
        for text in settings:
            cmd += ["--set", text]
        if lengths:
            cmd += ["--lengths", ",".join(str(n) for n in lengths)]
        rc = run_command(cmd, self.name)
        if rc == 3:
            print(f"{self.name}: some lengths were refused (see above); the table says so")
        elif rc != 0:
            raise Stop(f"{self.name}: ./eval exited with status {rc}")

    def deviations(self):
        """The keys whose value in the run's saved config.json differs from the config file (with this
        run's variant and seed applied), as section.key=value: a smoke test's --set train.steps=20,
        found from the run itself so that --table-only marks it too."""
        try:
            with open(os.path.join(self.abs_dir(), "config.json")) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return []
        return [f"{section}.{key}={json.dumps(saved[section][key])}"
                for section in ("model", "pe", "task", "train")
                for key, value in self.expected.get(section, {}).items()
                if key in saved.get(section, {}) and saved[section][key] != value]

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


SOLVED = 1.0  # % test error below which a seed counts as solving a synthetic task's split


def mean_std(values):
    """(mean, sample standard deviation or None with one value, n) of the values that exist."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    m = sum(vals) / len(vals)
    sd = (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else None
    return m, sd, len(vals)


def fmt_cell(values, seeds, solved=False):
    """mean ± std over the seeds (the value alone with one seed), the seeds that solve the split (error
    below SOLVED %) for the synthetic tasks, and how many seeds exist when some are missing."""
    m, sd, n = mean_std(values)
    if m is None:
        return "—"
    text = fmt_num(m) + (f" ± {sd:.2f}" if sd is not None else "")
    notes = []
    if solved and seeds > 1:
        notes.append(f"solved {sum(v < SOLVED for v in values if v is not None)}/{n}")
    if n < seeds:
        notes.append(f"{n} of {seeds} seeds")
    return text + (f" ({', '.join(notes)})" if notes else "")


def separated(a, b):
    """Whether two PEs' seed values differ beyond noise: their means differ by more than twice the
    standard error of the difference. None when a side has one seed (its noise is not measured)."""
    (ma, sa, na), (mb, sb, nb) = mean_std(a), mean_std(b)
    if sa is None or sb is None:
        return None
    return abs(ma - mb) > 2 * (sa * sa / na + sb * sb / nb) ** 0.5


def ranking_seeds(per_pe):
    """PE names ordered by mean, best (lowest) first: '<' separated beyond noise (separated()), '≈'
    within noise, '?' not measured (one seed). A chain through '≈' can join two PEs that are
    separated (a ≈ b ≈ c with a < c): such pairs follow, grouped by the better one, so the chain is
    not read as "all within noise"."""
    order = [pe for _, pe in sorted((mean_std(v)[0], pe) for pe, v in per_pe.items() if mean_std(v)[0] is not None)]
    n = len(order)
    sep = {(i, j): separated(per_pe[order[i]], per_pe[order[j]]) for i in range(n) for j in range(i + 1, n)}
    name = [PE_NAMES.get(pe, pe) for pe in order]
    out = []
    for i in range(n):
        if i:
            out.append({True: " < ", False: " ≈ ", None: " ? "}[sep[(i - 1, i)]])
        out.append(name[i])
    apart = []
    for i in range(n):
        worse = [name[j] for j in range(i + 2, n)
                 if sep[(i, j)] and not all(sep[(k, k + 1)] for k in range(i, j))]
        if worse:
            apart.append(f"{name[i]} < " + ", ".join(worse))
    if apart:
        out.append(" (beyond noise: " + "; ".join(apart) + ")")
    return "".join(out) if out else "—"


def own_length(run):
    """The eval.jsonl length of the table columns of a task that length tables also evaluate: a
    language model's training context, a flip-flop run's sequence length (its lines at other lengths
    must not count); None for the other tasks (each split has one length)."""
    task = run.config["task"]
    if task["name"] == "lm":
        return run.config["model"]["block_size"]
    if task["name"] == "flipflop":
        return task.get("eval_length") or task["length"]
    return None


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


def header_lines(title, source, command, runs, seeds, user_sets):
    """The title, the command, and a warning when any run's config differs from the committed one
    (a smoke test with --set), so such a table is never mistaken for a result."""
    lines = [f"# {title}", ""]
    deviating = sorted({d for r in runs for d in r.deviations()} | set(user_sets))
    if deviating:
        lines += [f"**Not a result: a pipeline test.** Runs trained with settings that differ from the "
                  f"committed configs: `{'`, `'.join(deviating)}`.", ""]
    lines += [f"Written by `{command}` on {datetime.date.today().isoformat()} "
              f"({platform.machine()}, {os.cpu_count()} cores). The paper's numbers: {source}. "
              f"{seeds} seed{'s' if seeds > 1 else ''} per position encoding.", ""]
    return lines


def seed_note(seeds, base_seeds):
    return (f"Seeds: seed k of {seeds} (k = 0..{seeds - 1}) trains with run.seed = the config's seed "
            f"({', '.join(str(b) for b in sorted(base_seeds))}) + k, into `<run>` for k = 0 and `<run>_s<k>` "
            "otherwise. task.data_seed is left at its default (the run seed), so each seed also draws its own "
            "data where a task generates it (the counting training sets, the synthetic evaluation splits), as "
            "the official counting generator's unseeded runs did; the text and code corpora are fixed, and "
            "the seed changes the initialisation, dropout and batch order. Mean ± sample standard "
            "deviation over the seeds. Evaluation: `./eval` on each run's latest checkpoint at the end of "
            "training (no best-checkpoint selection, as the official code).")


def runs_table(runs, groups, labels=None):
    """One row per run; labels: {run name: what the PE column says} where the PE's name is not enough."""
    lines = ["| PE | seed | run | config | steps | parameters | training wall-clock | ms/step | tokens/s | threads |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        label = (labels or {}).get(run.name) or PE_NAMES.get(run.pe, run.pe)
        s = run.summary()
        steps = "not started" if s["step"] is None else (f"{s['step']}" if s["step"] >= run.steps
                                                         else f"{s['step']} of {run.steps}")
        ms = f"{1000 * s['elapsed'] / s['step']:.0f}" if s["elapsed"] and s["step"] else "—"
        tps = f"{s['tokens_per_s']:.0f}" if s["tokens_per_s"] else "—"
        overrides = [t for t in run.sets if not t.startswith("run.seed=")]  # a variant's, a smoke test's
        config = f"`{run.config_path}`" + (" with " + ", ".join(f"`{t}`" for t in overrides) if overrides else "")
        lines.append(f"| {label}{'' if len(groups) == 1 else ' (' + run.group + ')'} | "
                     f"{run.base_seed + run.seed_index} | `{run.dir}` | {config} | {steps} | "
                     f"{s['params'] or '—'} | {fmt_duration(s['elapsed'])} | {ms} | {tps} | {s['threads'] or '—'} |")
    return lines + ["", "Training wall-clock is the trainer's own clock summed over restarts (it includes the "
                        "periodic evaluations, not the final ./eval)."]


def write_table(name, scale, pes, runs_dir, command, seeds, user_sets, results_dir):
    exp = EXPERIMENTS[name]
    groups = exp["groups"]
    runs = {(g, pe, k): Run(scale, g, pe, runs_dir, k, None, user_sets)
            for g in groups for pe in pes for k in range(seeds)}
    os.makedirs(results_dir, exist_ok=True)
    base = f"{name}_{scale}"
    metric = exp["metric"]
    synthetic = metric == "error"
    lines = header_lines(f"{exp['title']} — {'CPU' if scale == 'cpu' else 'paper'} scale", exp["source"],
                         command, runs.values(), seeds, user_sets)

    # ---- main table: paper next to ours, per column; ours: every seed's value
    ours = {}
    for pe in pes:
        for label, g, split in exp["columns"]:
            vals = []
            for k in range(seeds):
                run = runs[(g, pe, k)]
                row = run.find_eval(split, own_length(run))
                vals.append(row.get(metric) if row else None)
            ours[(pe, label)] = vals
    unfinished = {pe for (g, pe, k), r in runs.items() if not r.finished()}
    header = ["PE"]
    for label, _, _ in exp["columns"]:
        header += [f"{label}: paper", f"{label}: ours"]
    if "paper_params" in exp:
        header += ["params (M): paper", "params (M): ours"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {}
    for label, _, _ in exp["columns"]:
        means = [round(mean_std(ours[(pe, label)])[0], 2) for pe in pes if mean_std(ours[(pe, label)])[0] is not None]
        best[label] = min(means) if means else None
    for pe in sorted(set(pes) | set(exp["paper"]), key=lambda p: list(PE_NAMES).index(p)):
        cells = [PE_NAMES.get(pe, pe) + (" †" if pe in unfinished else "")]
        for i, (label, _, _) in enumerate(exp["columns"]):
            p = exp["paper"].get(pe)
            cells.append(p[i] if p else "not in the paper")
            if pe not in pes:
                cells.append("not run")
                continue
            m = mean_std(ours[(pe, label)])[0]
            text = fmt_cell(ours[(pe, label)], seeds, synthetic)
            cells.append(f"**{text}**" if m is not None and round(m, 2) == best[label] else text)
        if "paper_params" in exp:
            cells.append(str(exp["paper_params"].get(pe, "—")))
            s = runs[(groups[0], pe, 0)].summary() if pe in pes else {"params": None}
            cells.append(f"{s['params'] / 1e6:.2f}" if s["params"] else "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Metric: {exp['metric_doc']} Ours: " +
              ("mean ± standard deviation over the seeds" if seeds > 1 else "one seed") +
              (f"; \"solved k/n\": k of the n seeds have test error below {SOLVED:g}% on that split"
               if synthetic and seeds > 1 else "") + ". Bold: our best mean per column."]
    if unfinished:
        lines.append("† unfinished run (its latest checkpoint is shown; rerun the command to finish it).")
    lines += ["", "Ranking, best first (ours: '<' the means differ by more than twice the standard error of "
                  "their difference over the seeds, '≈' they do not: within seed noise, '?' one seed: the noise "
                  "is not measured; 'beyond noise: a < b, c': encodings the chain joins through '≈' whose means "
                  "differ beyond noise):", ""]
    for i, (label, _, _) in enumerate(exp["columns"]):
        paper_vals = {pe: float(v[i]) for pe, v in exp["paper"].items()}
        our_vals = {pe: ours[(pe, label)] for pe in pes}
        lines.append(f"- {label}: paper {ranking(paper_vals)}; ours {ranking_seeds(our_vals)}")
    lines += ["", "## Runs", ""] + runs_table(runs.values(), groups)
    lines += ["", "Per seed (" + ", ".join(label for label, _, _ in exp["columns"]) + "):", ""]
    for pe in pes:  # each group's runs have their own seeds
        for k in range(seeds):
            run_seeds = "/".join(str(runs[(g, pe, k)].base_seed + k) for g in groups)
            lines.append(f"- {PE_NAMES.get(pe, pe)}, seed{'s' if len(groups) > 1 else ''} {run_seeds}: " +
                         ", ".join(fmt_num(ours[(pe, label)][k]) for label, _, _ in exp["columns"]))
    if metric == "ppl":
        lines += ["", "Validation and test perplexity at the training context, per run:", ""]
        for (g, pe, k), run in runs.items():
            v, t = (run.find_eval(split, own_length(run)) or {} for split in ("valid", "test"))
            bpb = t.get("bits_per_byte")
            lines.append(f"- {PE_NAMES.get(pe, pe)}, seed {run.base_seed + k}: valid {fmt_num(v.get('ppl'))}, "
                         f"test {fmt_num(t.get('ppl'))}" + (f" ({bpb:.3f} bits per byte)" if bpb else ""))

    # ---- settings and differences
    lines += ["", "## Settings and differences from the paper", ""]
    for g in groups:
        cfg = runs[(g, pes[0], 0)].config
        lines += [f"`{config_path(scale, g, '<pe>')}` (the PE variants differ only in `pe`; "
                  f"`{runs[(g, pes[0], 0)].config_path}` shown):", ""]
        lines += settings_lines(cfg) + ["", "Its notes:", "", "```"] + cfg.get("notes", []) + ["```", ""]
    if scale == "cpu":
        lines += ["The CPU scale differs from the paper scale in the keys listed in the notes; the paper-scale "
                  "notes then say how the paper scale itself relates to the paper (what the paper gives, what "
                  "is ours). The CPU learning rates and step counts were chosen by watching CoPE's learning "
                  "curve (the notes say so), not by a rule applied to every encoding alike.", ""]
    lines += [seed_note(seeds, {r.base_seed for r in runs.values()})]

    # ---- plots (seed 0's curves)
    lines += ["", "## Curves", ""]
    for g in groups:
        suffix = "" if len(groups) == 1 else "_" + g.split("_", 1)[1]
        folders = [f"{PE_NAMES.get(pe, pe)}={runs[(g, pe, 0)].abs_dir()}" for pe in pes
                   if os.path.exists(os.path.join(runs[(g, pe, 0)].abs_dir(), "metrics.jsonl"))]
        if not folders:
            continue
        valid_metric = "error" if metric == "error" else "loss"
        plots = [(f"{base}{suffix}_curves.svg", ["--split", "train", "--metric", "loss", "--logy"],
                  "training loss"),
                 (f"{base}{suffix}_valid.svg", ["--split", "valid", "--metric", valid_metric],
                  "validation " + ("error %" if metric == "error" else "loss"))]
        for fname, args, what in plots:
            cmd = [sys.executable, os.path.join(HERE, "plot.py"), "curves", *folders, *args, "--title",
                   f"{exp['title']} ({g}, {scale} scale, seed {runs[(g, pes[0], 0)].base_seed}): {what}",
                   "-o", os.path.join(results_dir, fname)]
            if subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode == 0:
                lines.append(f"- {what}{' (' + g + ')' if suffix else ''}, first seed: [{fname}]({fname})")
    if metric == "ppl" and "cope" in pes:
        lines += heatmap_lines(runs[(groups[0], "cope", 0)], os.path.join(results_dir, base + "_heatmaps"),
                               base + "_heatmaps")
    path = os.path.join(results_dir, base + ".md")
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print("wrote", os.path.relpath(path, os.getcwd()))


HEATMAP_HEADS = 2


def key_gates(tokens_file):
    """(token, the key's mean gate over the queries after it) per position of ./eval --heatmap's tokens file."""
    rows = []
    with open(tokens_file) as f:
        for line in f:
            if not line.startswith("#"):
                cols = line.rstrip("\n").split("\t")
                if len(cols) >= 4 and cols[3] != "nan":
                    rows.append((cols[1], float(cols[3])))
    return rows


def heatmap_lines(run, out_dir, rel_dir):
    """The paper's figure of CoPE heads on text (gates and positions over a window): ./eval --heatmap of
    every head of the run's first validation window, of which the HEATMAP_HEADS heads whose gates
    differ most between keys (the largest standard deviation of the keys' mean gates: the most
    selective counting) are kept in out_dir, with the tokens whose gates open most."""
    if not run.finished():
        return []
    cfg = run.config["model"]
    scratch = os.path.join(run.abs_dir(), "heatmaps")
    heads = []
    for layer in range(cfg["n_layers"]):
        for head in range(cfg["n_heads"]):
            cmd = ["./eval", run.dir, "--heatmap", os.path.relpath(scratch, ROOT), "--layer", str(layer), "--head",
                   str(head), "--split", "valid", "--set", "run.threads=1"]
            if subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode != 0:
                raise Stop(f"{run.name}: ./eval --heatmap failed for layer {layer}, head {head}")
            gates = key_gates(os.path.join(scratch, f"L{layer}_H{head}_tokens.txt"))
            values = [g for _, g in gates]
            heads.append((statistics.pstdev(values), statistics.mean(values), layer, head, gates))
    heads.sort(reverse=True)
    os.makedirs(out_dir, exist_ok=True)
    lines = ["", "## CoPE heads on text", "",
             f"The paper draws two CoPE heads of its text model (gates and positions over a window). Ours: "
             f"`./eval {run.dir} --heatmap DIR --layer L --head H --split valid` on the first validation window "
             f"({cfg['block_size']} tokens) of the CoPE run's first seed, for every head; kept are the "
             f"{HEATMAP_HEADS} heads whose keys' mean gates spread most (standard deviation over the window's "
             f"keys), the most selective counters. Rows are queries, columns keys; positions are before the "
             f"clamp at npos − 1. Every head's standard deviation and mean gate, the kept ones first:", "",
             "| layer | head | sd of the keys' mean gates | mean gate | tokens with the highest mean gate (count) |",
             "|---|---|---|---|---|"]
    for rank, (sd, mean, layer, head, gates) in enumerate(heads):
        by_token = {}
        for tok, g in gates:
            by_token.setdefault(tok, []).append(g)
        top = sorted(((statistics.mean(v), t, len(v)) for t, v in by_token.items() if len(v) >= 3), reverse=True)[:4]
        shown = ", ".join(f"`{t}` {v:.2f} ({n})" for v, t, n in top)
        lines.append(f"| {layer} | {head} | {sd:.3f} | {mean:.2f} | {shown} |")
        if rank < HEATMAP_HEADS:
            for what in ("gates", "positions", "attention"):
                shutil.copyfile(os.path.join(scratch, f"L{layer}_H{head}_{what}.png"),
                                os.path.join(out_dir, f"L{layer}_H{head}_{what}.png"))
            shutil.copyfile(os.path.join(scratch, f"L{layer}_H{head}_tokens.txt"),
                            os.path.join(out_dir, f"L{layer}_H{head}_tokens.txt"))
    lines += ["", "Tokens are the BPE's pieces as `./eval` prints them (`\\x0a` is a newline, `\\x20` a space); "
              "only tokens seen at least 3 times in the window are listed.", ""]
    for _, _, layer, head, _ in heads[:HEATMAP_HEADS]:
        lines.append(f"- layer {layer}, head {head}: [gates]({rel_dir}/L{layer}_H{head}_gates.png), "
                     f"[positions]({rel_dir}/L{layer}_H{head}_positions.png), "
                     f"[attention]({rel_dir}/L{layer}_H{head}_attention.png), "
                     f"[tokens and their mean gates]({rel_dir}/L{layer}_H{head}_tokens.txt)")
    return lines


def train_context(run):
    """T: the training context (flip-flop: the sequence length, whose N tokens ./eval --lengths sets)."""
    return run.config["task"].get("length") or run.config["model"]["block_size"]


def length_runs(spec, scale, runs_dir, seeds, user_sets):
    """{(curve key, seed): (Run, eval overrides)} of a length experiment."""
    return {(key, k): (Run(scale, spec["group"], pe, runs_dir, k, variant, user_sets), sets)
            for k in range(seeds) for key, _, pe, variant, sets in spec["curves"]}  # seed-major, as reproduce


def shape_sentence(spec, means):
    """Which reading of uncapped relative PE has the paper's shape, computed from the numbers: the
    paper's uncapped curve lies above its capped one at every T' > T, by a gap that grows with T'
    (in perplexity relative to T' = T). Each reading is checked for the same on our multiples."""
    def gaps(ratios_of, key, cap, ms):
        out = []
        for m in ms:
            r, c = ratios_of(key, m), ratios_of(cap, m)
            if r is None or c is None:
                return None
            out.append(r - c)
        return out

    panel = spec["paper"][0]  # T = 1024: its uncapped curve is on the figure's scale at every point
    paper, pm = panel["curves"], panel["multiples"]
    paper_ratio = lambda key, m: paper[key][pm.index(m)] / paper[key][0] if key in paper else None
    ours_ratio = lambda key, m: (means[(key, m)] / means[(key, 1)]
                                 if means.get((key, m)) is not None and means.get((key, 1)) else None)
    def shape(g):
        return all(x > 0 for x in g) and all(b >= a for a, b in zip(g, g[1:]))

    pg = gaps(paper_ratio, "rel_zero", "rel_cap", pm[1:])
    lines = [f"Shape of the paper's uncapped relative PE (T = {panel['T']}; perplexity relative to T' = T, minus "
             f"relative-capped's): "
             + ", ".join(f"{g:+.3f} at {m:g}T" for g, m in zip(pg, pm[1:])) +
             (" (above capped at every T' > T, by a growing gap: the shape a reading must have)." if shape(pg)
              else " (not above capped by a growing gap).")]
    ms = [m for m in spec["multiples"] if m > 1]
    for key, label in (("rel_zero", "zero beyond the table"), ("rel_table", "table of 5T")):
        g = gaps(ours_ratio, key, "rel_cap", ms)
        if g is None:
            lines.append(f"Ours, {label}: not measured yet.")
            continue
        match = shape(g)
        lines.append(f"Ours, {label}: " + ", ".join(f"{x:+.3f} at {m:g}T" for x, m in zip(g, ms)) +
                     (" — matches the paper's shape." if match else " — does not match the paper's shape."))
    return lines


def write_lengths_table(name, scale, runs_dir, command, seeds, user_sets, results_dir):
    spec = LENGTH_EXPERIMENTS[name]
    runs = length_runs(spec, scale, runs_dir, seeds, user_sets)
    os.makedirs(results_dir, exist_ok=True)
    base = f"{name}_{scale}"
    metric, split = spec["metric"], spec["split"]
    lines = header_lines(f"{spec['title']} — {'CPU' if scale == 'cpu' else 'paper'} scale", spec["source"],
                         command, [r for r, _ in runs.values()], seeds, user_sets)
    T = train_context(runs[(spec["curves"][0][0], 0)][0])
    head = ["", *[f"T' = {m:g}T = {int(round(T * m))}" for m in spec["multiples"]]]
    lines += [f"Trained at T = {T}; {spec['metric_doc']} " +
              ("Ours: mean ± standard deviation over the seeds." if seeds > 1 else "Ours: one seed."), "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    curve_label = {c[0]: c[1] for c in spec["curves"]}
    for panel in spec.get("paper", []):
        for key, values in panel["curves"].items():
            label = curve_label[key]
            read = {m: (spec["paper_off_scale"] if v is None else f"≈{v:.2f}" if m != 1 else f"{v:.2f}")
                    for m, v in zip(panel["multiples"], values)}
            cells = [read.get(m, "not in the figure") for m in spec["multiples"]]
            lines.append("| " + " | ".join([f"paper (T = {panel['T']}): {label}"] + cells) + " |")
    means, series = {}, []
    for key, label, pe, variant, sets in spec["curves"]:
        cells, pts = [f"ours: {label}"], []
        for m in spec["multiples"]:
            n = int(round(T * m))
            vals = []
            for k in range(seeds):
                run = runs[(key, k)][0]
                row = run.find_eval(split, n, sets)
                vals.append(row.get(metric) if row else None)
            mean, sd, _ = mean_std(vals)
            means[(key, m)] = mean
            if mean is None and pe == "abs" and n > runs[(key, 0)][0].config["model"]["block_size"]:
                cells.append("absent (refused: no learned positions beyond T)")
                continue
            cells.append(fmt_cell(vals, seeds))
            if mean is not None:
                pts.append([m, mean, sd])
        lines.append("| " + " | ".join(cells) + " |")
        series.append({"label": f"ours: {label}", "points": pts})
    lines += [""]
    if "paper" in spec:
        lines += shape_sentence(spec, means) + [""]
        # the same axis for both: perplexity relative to T' = T (ours per token of the config's tokenizer, the
        # paper's per GPT-2 BPE token)
        for s in series:
            first = s["points"][0][1] if s["points"] and s["points"][0][0] == 1 else None
            s["points"] = [[x, y / first, None if sd is None else sd / first] for x, y, sd in s["points"]] if first else []
        for panel in spec["paper"]:
            for key, values in panel["curves"].items():
                series.append({"label": f"paper, T = {panel['T']}: {curve_label[key]}", "dashed": True,
                               "points": [[m, v / values[0], None] for m, v in zip(panel["multiples"], values)
                                          if v is not None]})
    lines += ["Readings of relative PE beyond its table: \"zero\" is the official code's uncapped model "
              "(`./eval --set pe.rel_beyond=zero` on the relative run: the term is absent for distances beyond "
              "the table); \"table of 5T\" trains its own run with `pe.rel_max_distance` = 5T, whose entries "
              "beyond T are never trained; relative-capped reuses the farthest entry (`pe.rel_beyond` \"cap\", "
              "the configs' setting). The three relative runs at T are the same model but for the 5T table's."]
    points_file = f"{base}_points.json"
    plot_file = f"{base}.svg"
    with open(os.path.join(results_dir, points_file), "w") as f:
        json.dump(series, f, indent=1)
    ylabel = (f"{split} perplexity relative to T' = T" if "paper" in spec else f"{split} error (%)")
    cmd = [sys.executable, os.path.join(HERE, "plot.py"), "lengths", "--series", os.path.join(results_dir, points_file),
           "--xlabel", "evaluation context T' / training context T", "--ylabel", ylabel, "--title",
           f"{spec['title']} ({scale} scale)", "-o", os.path.join(results_dir, plot_file)]
    if any(s["points"] for s in series) and subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL).returncode == 0:
        lines += ["", f"Plot: [{plot_file}]({plot_file}) (points: [{points_file}]({points_file}))."]
    # one row per run folder, curve by curve and seed by seed; the relative run serves two curves
    labels, by_name = {}, {}
    for key, label, *_ in spec["curves"]:
        for k in range(seeds):
            run = runs[(key, k)][0]
            by_name.setdefault(run.name, run)
            labels[run.name] = labels[run.name] + "; " + label if run.name in labels else label
    lines += ["", "## Runs", ""] + runs_table(list(by_name.values()), [spec["group"]], labels)
    lines += ["", seed_note(seeds, {r.base_seed for r, _ in runs.values()})]
    path = os.path.join(results_dir, base + ".md")
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print("wrote", os.path.relpath(path, os.getcwd()))


def reproduce_lengths(name, args, command):
    spec = LENGTH_EXPERIMENTS[name]
    if not args.table_only:
        for (key, k), (run, sets) in length_runs(spec, args.scale, args.runs_dir, args.seeds, args.set).items():
            if not run.finished():
                run.check_data()
            run.train(args.threads, args.runs_dir)
            T = train_context(run)
            lengths = [int(round(T * m)) for m in spec["multiples"]]
            if run.pe == "abs":  # a learned table has no positions beyond block_size: refused, shown absent
                lengths = [n for n in lengths if n <= run.config["model"]["block_size"]]
            run.evaluate([spec["split"]], lengths, args.threads, sets)
    write_lengths_table(name, args.scale, args.runs_dir, command, args.seeds, args.set, args.results_dir)


def reproduce(name, args, command):
    if name in LENGTH_EXPERIMENTS:
        return reproduce_lengths(name, args, command)
    exp = EXPERIMENTS[name]
    known = make_configs.EXPERIMENTS[exp["groups"][0]]["pes"]
    pes = known if not args.pes else args.pes.split(",")
    for pe in pes:
        if pe not in known:
            raise Stop(f"--pes: {name} compares {', '.join(known)}; \"{pe}\" is not one of them", 2)
    if not args.table_only:
        # seed-major: a table stopped early holds every PE at the same number of seeds
        for k in range(args.seeds):
            for g in exp["groups"]:
                for pe in pes:
                    run = Run(args.scale, g, pe, args.runs_dir, k, None, args.set)
                    if not run.finished():
                        run.check_data()
                    run.train(args.threads, args.runs_dir)
                    splits = [s for _, gg, s in exp["columns"] if gg == g]
                    if exp["metric"] == "ppl" and "valid" not in splits:
                        splits.append("valid")  # the runs table shows it
                    length = own_length(run)
                    run.evaluate(splits, None if length is None else [length], args.threads)
    write_table(name, args.scale, pes, args.runs_dir, command, args.seeds, args.set, args.results_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("experiment", choices=list(EXPERIMENTS) + list(LENGTH_EXPERIMENTS) + ["all"])
    ap.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    ap.add_argument("--pes", help="comma-separated subset of the experiment's PEs (default: all it compares)")
    ap.add_argument("--threads", type=int, default=2, help="run.threads of ./train and ./eval (default 2)")
    ap.add_argument("--runs-dir", default="runs",
                    help="folder of the run folders, relative to the repository root (default runs)")
    ap.add_argument("--table-only", action="store_true", help="only write the table from the runs as they are")
    ap.add_argument("--seeds", type=int, default=1,
                    help="seeds per position encoding (default 1); the table reports mean ± std over them")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a ./train override for every run (repeatable), to test the pipeline with tiny "
                         "runs (e.g. train.steps=20); needs --runs-dir and --results-dir elsewhere, and the "
                         "table says it is not a result")
    ap.add_argument("--results-dir", default="results",
                    help="folder of the tables and plots, relative to the repository root (default results)")
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    if args.set and (os.path.normpath(args.runs_dir) == "runs" or os.path.normpath(args.results_dir) == "results"):
        ap.error("--set trains runs that are not the committed configs: give --runs-dir and --results-dir "
                 "other than runs and results (e.g. /tmp/smoke/runs, /tmp/smoke/results)")
    for text in args.set:
        key, sep, _ = text.partition("=")
        if not sep or key.count(".") != 1:
            ap.error(f"--set {text}: expected section.key=value (e.g. train.steps=20)")
    args.results_dir = os.path.join(ROOT, args.results_dir)
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    if not args.table_only:
        for prog in ("train", "eval"):
            if not os.access(os.path.join(ROOT, prog), os.X_OK):
                sys.exit(f"reproduce: ./{prog} is not built (run make)")
    names = ALL if args.experiment == "all" else [args.experiment]
    if (args.experiment == "all" or args.experiment in LENGTH_EXPERIMENTS) and args.pes:
        ap.error("--pes applies to one table experiment, not to all or a length experiment")
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
