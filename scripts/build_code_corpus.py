#!/usr/bin/env python3
"""Builds a deterministic code corpus from the Python standard library, for the code-modelling
experiment (CoPE paper §5; its data set is unknown, so this is our stand-in).

    python3 scripts/build_code_corpus.py [--root /usr/lib/python3.11] [--out data/code]
                                         [--valid 5] [--test 5] [--include-tests]

Files: every *.py under the root (by default the newest /usr/lib/python3.X), except
site-packages/dist-packages (installed packages, not the stdlib), __pycache__ and, unless
--include-tests, folders named test/tests/idlelib/idle_test (they hold deliberately broken and
generated files). Files that are not valid UTF-8 are skipped and listed.

Split by file, never inside one: a file goes to test when sha256(relative path) mod 100 is below
--test, else to valid when below --test + --valid, else to train. The assignment depends only on the
path, so adding or removing files moves no other file between splits. Within a split the files
follow in sorted path order, each one's text ending with a newline. Writes train.txt, valid.txt,
test.txt and manifest.tsv (split, path, bytes, sha256 per file, and the sha256 of the three outputs),
which the lm task loads with task.data_dir = the output folder.
"""
import argparse
import glob
import hashlib
import os
import re
import sys

EXCLUDED_ALWAYS = {"site-packages", "dist-packages", "__pycache__"}
EXCLUDED_TESTS = {"test", "tests", "idle_test"}


def default_root():
    cands = [p for p in glob.glob("/usr/lib/python3.*") if re.fullmatch(r"/usr/lib/python3\.\d+", p)]
    if not cands:
        sys.exit("build_code_corpus: no /usr/lib/python3.X found; pass --root")
    return max(cands, key=lambda p: int(p.rsplit(".", 1)[1]))


def split_of(rel, valid, test):
    h = int(hashlib.sha256(rel.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if h < test else "valid" if h < test + valid else "train"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=None, help="stdlib folder (default: newest /usr/lib/python3.X)")
    ap.add_argument("--out", default="data/code", help="output folder (default data/code)")
    ap.add_argument("--valid", type=int, default=5, help="percent of files for valid (default 5)")
    ap.add_argument("--test", type=int, default=5, help="percent of files for test (default 5)")
    ap.add_argument("--include-tests", action="store_true", help="keep test folders")
    args = ap.parse_args()
    if args.valid < 0 or args.test < 0 or args.valid + args.test >= 100:
        sys.exit("build_code_corpus: --valid and --test are percents summing below 100")
    root = os.path.realpath(args.root or default_root())
    if not os.path.isdir(root):
        sys.exit(f"build_code_corpus: {root}: not a folder")

    excluded = EXCLUDED_ALWAYS | (set() if args.include_tests else EXCLUDED_TESTS)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in excluded)
        for f in filenames:
            if f.endswith(".py"):
                files.append(os.path.relpath(os.path.join(dirpath, f), root))
    files.sort()

    out = {"train": [], "valid": [], "test": []}
    manifest, skipped = [], []
    for rel in files:
        with open(os.path.join(root, rel), "rb") as fh:
            raw = fh.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            skipped.append(rel)
            continue
        if not text.endswith("\n"):
            text += "\n"
        s = split_of(rel, args.valid, args.test)
        out[s].append(text)
        manifest.append((s, rel, len(raw), hashlib.sha256(raw).hexdigest()))

    os.makedirs(args.out, exist_ok=True)
    digests = {}
    for s, parts in out.items():
        data = "".join(parts).encode("utf-8")
        with open(os.path.join(args.out, f"{s}.txt"), "wb") as fh:
            fh.write(data)
        digests[s] = (len(data), hashlib.sha256(data).hexdigest(), len(parts))
    with open(os.path.join(args.out, "manifest.tsv"), "w", encoding="utf-8") as fh:
        fh.write(f"# root\t{root}\n")
        for s, (n, h, k) in digests.items():
            fh.write(f"# {s}.txt\t{k} files\t{n} bytes\tsha256 {h}\n")
        for rel in skipped:
            fh.write(f"# skipped (not UTF-8)\t{rel}\n")
        fh.write("split\tpath\tbytes\tsha256\n")
        for row in manifest:
            fh.write("\t".join(str(x) for x in row) + "\n")
    for s, (n, h, k) in digests.items():
        print(f"{args.out}/{s}.txt: {k} files, {n} bytes, sha256 {h[:16]}")
    if skipped:
        print(f"skipped {len(skipped)} non-UTF-8 files (listed in manifest.tsv)")


if __name__ == "__main__":
    main()
