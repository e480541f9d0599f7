#!/bin/sh
# scripts/reproduce.py end to end, with runs of 20 steps and evaluation splits of 20 sequences: a
# table with two seeds (mean ± std, "solved k/n", each run listed once, headed "Not a result"), the
# flip-flop length table (absolute PE absent beyond T, the relative run read two ways) and the
# flip-flop table over the same runs (cells at the training length), a rerun that trains and
# evaluates nothing again and writes the same table, the ranking's noise rule, and refused arguments.
# reproduce.py runs the repository's own ./train and ./eval, so this test needs BIN = . (the default).
# Prints `reproduce: N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-.}
. tests/common.sh
PY=python3

if [ "$BIN" != . ]; then
    echo "reproduce.py runs ./train from the repository root; BIN=$BIN is another build: not run here"
    finish reproduce
    exit
fi
SMOKE="--threads 1 --set train.steps=20 --set train.eval_interval=10 --set train.checkpoint_interval=10
       --set task.eval_sequences=20 --runs-dir $TMP/runs --results-dir $TMP/results"
R=$TMP/results

# A table with two seeds per position encoding.
$PY scripts/reproduce.py selcopy --seeds 2 $SMOKE >"$TMP/sel1.out" 2>&1
rc=$?
T=$R/selcopy_cpu.md
if [ $rc -eq 0 ] && [ -f "$T" ] && grep -q "^\*\*Not a result: a pipeline test.\*\*" "$T"; then
    ok "selcopy with 2 seeds writes its table, headed as not a result"
else bad "selcopy --seeds 2 (exit $rc): $(tail -3 "$TMP/sel1.out")"; fi
# each of the 3 PE rows: 3 cells "mean ± std (solved k/2)"
cells=$(grep -E "^\| (Absolute PE|RoPE|CoPE) \|" "$T" | grep -oE "[0-9]+\.[0-9]+ ± [0-9]+\.[0-9]+ \(solved [0-2]/2\)" | wc -l)
if [ "$cells" -eq 9 ]; then ok "each PE's 3 splits are mean ± std with the seeds that solve them"
else bad "expected 9 'mean ± std (solved k/2)' cells, found $cells"; fi
folders=$(grep -oE '`[^`]*/runs/cpu_selcopy_[a-z_0-9]+`' "$T" | sort)
if [ "$(echo "$folders" | wc -l)" -eq 6 ] && [ "$(echo "$folders" | uniq | wc -l)" -eq 6 ] &&
    echo "$folders" | grep -q "cpu_selcopy_cope_s1"; then
    ok "the runs table lists the 6 run folders (seed 1 in _s1), each once"
else bad "runs table folders: $folders"; fi
if [ -s "$R/selcopy_cpu_curves.svg" ] && [ -s "$R/selcopy_cpu_valid.svg" ]; then ok "the two plots are written"
else bad "plots missing: $(ls "$R")"; fi

# Rerun: nothing trained or evaluated again, the same table but for the line naming the command and date.
lines_before=$(cat "$TMP"/runs/*/eval.jsonl | wc -l)
cp "$T" "$TMP/table1.md"
$PY scripts/reproduce.py selcopy --seeds 2 $SMOKE >"$TMP/sel2.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c "not trained again" "$TMP/sel2.out")" -eq 6 ] && ! grep -q '^+ \./' "$TMP/sel2.out" &&
    [ "$(cat "$TMP"/runs/*/eval.jsonl | wc -l)" -eq "$lines_before" ]; then
    ok "a rerun trains and evaluates nothing again"
else bad "rerun (exit $rc): $(grep '^+ ' "$TMP/sel2.out" | head -3)"; fi
if [ "$(grep -v '^Written by' "$TMP/table1.md")" = "$(grep -v '^Written by' "$T")" ]; then
    ok "and writes the same table"
else bad "the rerun's table differs: $(diff "$TMP/table1.md" "$T" | head -5)"; fi

# The flip-flop length table: 6 curves, absolute PE refused beyond T, one relative run read two ways.
$PY scripts/reproduce.py lengths_flipflop --seeds 1 $SMOKE >"$TMP/len.out" 2>&1
rc=$?
L=$R/lengths_flipflop_cpu.md
if [ $rc -eq 0 ] && [ "$(grep -c '^| ours: ' "$L")" -eq 6 ] &&
    [ "$(grep '^| ours: Absolute PE' "$L" | grep -o 'absent (refused' | wc -l)" -eq 5 ] &&
    [ "$(grep '^| ours: CoPE |' "$L" | grep -oE '\| [0-9]+\.[0-9]+ ' | wc -l)" -eq 6 ]; then
    ok "lengths_flipflop: 6 curves, absolute PE absent at the 5 lengths beyond T, CoPE at all 6"
else bad "lengths_flipflop (exit $rc): $(tail -3 "$TMP/len.out")"; fi
if [ "$(grep -c '^+ ./eval .*cpu_flipflop_rel --split test.*rel_beyond=zero' "$TMP/len.out")" -eq 1 ] &&
    [ "$(grep -c '^| Relative PE, zero beyond the table (official code); Relative-capped | 1 |' "$L")" -eq 1 ] &&
    grep -q 'cpu_flipflop_rel_table5x` | `configs/cpu/flipflop_rel.json` with `pe.rel_max_distance=640`' "$L" &&
    [ -s "$R/lengths_flipflop_cpu.svg" ] && [ -s "$R/lengths_flipflop_cpu_points.json" ]; then
    ok "the relative run is evaluated with the zero reading and listed once for both; the 5T table is its own run"
else bad "length table runs: $(grep 'cpu_flipflop_rel' "$L" | head -3)"; fi
# The flip-flop table over runs that the length table also evaluated: its cells are at the training
# length, not at whichever length was evaluated last (5T here).
$PY scripts/reproduce.py flipflop --pes cope $SMOKE >"$TMP/ff.out" 2>&1
rc=$?
at_T=$(grep '^| ours: CoPE |' "$L" | awk -F'|' '{gsub(/ /, "", $3); print $3}')
in_table=$(grep -m 1 '^| CoPE |' "$R/flipflop_cpu.md" | awk -F'|' '{gsub(/[ *]/, "", $4); print $4}')
if [ $rc -eq 0 ] && [ -n "$at_T" ] && [ "$at_T" = "$in_table" ]; then
    ok "the flip-flop table takes CoPE's error at the training length ($in_table), as the length table at T"
else bad "flip-flop table (exit $rc): CoPE $in_table, the length table at T: $at_T; $(tail -2 "$TMP/ff.out")"; fi

# The ranking: neighbours within noise ('≈') can chain two encodings that differ beyond it.
rank=$($PY -c 'import sys; sys.path.insert(0, "scripts"); import reproduce as R
print(R.ranking_seeds({"cope": [7.8, 5.3, 9.3], "rel": [7.8, 19.3, 8.8], "abs": [18.7, 17.6, 18.3]}))
print(R.ranking_seeds({"cope": [1, 1.1, 0.9], "rel": [2, 2.1, 1.9], "abs": [3, 3.1, 2.9]}))')
if [ "$rank" = "CoPE ≈ Relative PE ≈ Absolute PE (beyond noise: CoPE < Absolute PE)
CoPE < Relative PE < Absolute PE" ]; then
    ok "a ranking chained through '≈' names the pairs that still differ beyond noise"
else bad "ranking: $rank"; fi

# Refused arguments: each names what was wrong, with status 2.
$PY scripts/reproduce.py selcopy --pes cope,alibi --table-only --runs-dir "$TMP/runs" --results-dir "$R" >"$TMP/p.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q 'selcopy compares cope, rope, abs; "alibi" is not one of them' "$TMP/p.out"; then
    ok "--pes with a PE the experiment does not compare is refused, naming it"
else bad "--pes alibi: exit $rc, $(cat "$TMP/p.out")"; fi
$PY scripts/reproduce.py selcopy --set train.steps=20 >"$TMP/s.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "give --runs-dir and --results-dir other than runs and results" "$TMP/s.out"; then
    ok "--set into the real runs/ and results/ is refused"
else bad "--set into runs/: exit $rc, $(tail -2 "$TMP/s.out")"; fi

finish reproduce
