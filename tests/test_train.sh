#!/bin/sh
# End-to-end tests of ./train: bit-identical reruns, exact resume (also across SIGINT), refusal of
# an existing run, bad configs and corrupted checkpoints. Prints `train: N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-.}  # the folder of train, eval, sample (tests/run_tests.sh)
. tests/common.sh
PY=python3
TINY="configs/flipflop_tiny.json --set run.out_dir=$TMP --set run.threads=2"

# The training losses of a run, one per step (tokens_per_s varies and is dropped).
losses() { grep '"split": "train"' "$1/metrics.jsonl" | sed -E 's/, "tokens_per_s": [0-9.e+-]+//'; }
# The parameters of a run's latest checkpoint.
params() { $PY scripts/checkpoint.py "$1/$(cat "$1/latest")" --dump params; }

"$BIN/train" $TINY --set run.name=a --set train.steps=40 --set train.log_interval=1 >"$TMP/a.out" 2>&1 || bad "run a failed: $(tail -3 "$TMP/a.out")"
"$BIN/train" $TINY --set run.name=b --set train.steps=40 --set train.log_interval=1 >"$TMP/b.out" 2>&1
if [ -n "$(losses "$TMP/a")" ] && [ "$(losses "$TMP/a")" = "$(losses "$TMP/b")" ] && [ "$(params "$TMP/a")" = "$(params "$TMP/b")" ]; then
    ok "same config, seed and threads give bit-identical losses and parameters"
else bad "reruns differ"; fi

# Results do not depend on the thread count: 1 thread gives run a's bits (2 threads).
"$BIN/train" $TINY --set run.name=t1 --set train.steps=40 --set train.log_interval=1 --set run.threads=1 >/dev/null 2>&1
if [ -n "$(losses "$TMP/t1")" ] && [ "$(losses "$TMP/a")" = "$(losses "$TMP/t1")" ] &&
    [ "$(params "$TMP/a")" = "$(params "$TMP/t1")" ]; then
    ok "1 and 2 threads give bit-identical losses and parameters"
else bad "1 and 2 threads differ"; fi

# Micro-batches run at once on model replicas, one a thread (src/micro.h): 1, 2 and 3 threads (2
# leaving the third micro-batch to a round of its own) give the same bits, with dropout, the gate
# keys of their own and the RoPE and CoPE tables that each layer prepares. Micro-batches of 17
# sequences (2159 tokens) reach the products matmul.c cuts into row tiles and into K slices.
MICRO="--set train.batch_size=51 --set train.grad_accum=3 --set model.dropout=0.1 --set pe.type=cope+rope --set pe.sep_keys=true --set train.steps=8 --set train.log_interval=1"
for t in 1 2 3; do "$BIN/train" $TINY $MICRO --set run.name=mb$t --set run.threads=$t >"$TMP/mb$t.out" 2>&1; done
if [ -n "$(losses "$TMP/mb1")" ] && [ "$(losses "$TMP/mb1")" = "$(losses "$TMP/mb2")" ] &&
    [ "$(losses "$TMP/mb1")" = "$(losses "$TMP/mb3")" ] && [ "$(params "$TMP/mb1")" = "$(params "$TMP/mb2")" ] &&
    [ "$(params "$TMP/mb1")" = "$(params "$TMP/mb3")" ]; then
    ok "micro-batches on 1, 2 and 3 threads (replicas at once) give bit-identical losses and parameters"
else bad "micro-batches differ with the thread count: $(tail -2 "$TMP/mb2.out")"; fi
# Where OMP_MAX_ACTIVE_LEVELS lets the regions inside a replica fork, they still run on the
# replica's one thread (src/micro.c), with the same bits. (Before, each forked a team of the run's
# thread count: at 2 threads on 2 cores, 4 threads ran at half the speed, and the thread governor
# took the machine for a busy one.)
OMP_MAX_ACTIVE_LEVELS=2 "$BIN/train" $TINY $MICRO --set run.name=mbn --set run.threads=2 >"$TMP/mbn.out" 2>&1
if [ -n "$(losses "$TMP/mbn")" ] && [ "$(losses "$TMP/mb1")" = "$(losses "$TMP/mbn")" ] &&
    [ "$(params "$TMP/mb1")" = "$(params "$TMP/mbn")" ]; then
    ok "micro-batches with nested parallel regions enabled give the same bits"
else bad "OMP_MAX_ACTIVE_LEVELS=2 changes the micro-batches' bits: $(tail -2 "$TMP/mbn.out")"; fi
# The replicas' memory is budgeted: --dry-run lists one replica besides the model at 2 threads.
if "$BIN/train" $TINY --set train.grad_accum=4 --dry-run | grep -q "1 model replica running micro-batches at once"; then
    ok "--dry-run lists the replicas that run micro-batches at once"
else bad "--dry-run does not list the micro-batch replicas"; fi
# A memory limit that holds the run (18.5 MiB) but not the replica (16.9 MiB more) runs the
# micro-batches in turn rather than refusing the run.
"$BIN/train" $TINY --set train.grad_accum=4 --dry-run --memory-limit 30M >"$TMP/ml.out" 2>&1
"$BIN/train" $TINY --set train.grad_accum=4 --memory-limit 30M --set run.name=ml --set train.steps=3 >/dev/null 2>&1
rc=$?
if [ $rc = 0 ] && grep -q "total" "$TMP/ml.out" && ! grep -q "model replica" "$TMP/ml.out"; then
    ok "a memory limit too small for a replica runs the micro-batches in turn"
else bad "memory limit and replicas: exit $rc, $(grep -c 'model replica' "$TMP/ml.out") replica lines"; fi

# Nor on how the threads share out the work: tiles and heads taken as they come (the schedule while
# other processes preempt the threads) give run a's bits (equal shares, the quiet machine's).
OMP_SCHEDULE=dynamic,1 "$BIN/train" $TINY --set run.name=dyn --set train.steps=40 --set train.log_interval=1 >/dev/null 2>&1
if [ -n "$(losses "$TMP/dyn")" ] && [ "$(losses "$TMP/a")" = "$(losses "$TMP/dyn")" ] &&
    [ "$(params "$TMP/a")" = "$(params "$TMP/dyn")" ]; then
    ok "static and dynamic shares of the work give bit-identical losses and parameters"
else bad "static and dynamic schedules differ"; fi

"$BIN/train" $TINY --set run.name=c --set train.steps=40 --set train.log_interval=1 --set run.seed=2 >/dev/null 2>&1
if [ "$(losses "$TMP/a")" != "$(losses "$TMP/c")" ]; then ok "another seed gives other losses"; else bad "seed ignored"; fi

# k steps, stop, resume to N: the same losses and parameters as N straight.
"$BIN/train" $TINY --set run.name=r --set train.steps=15 --set train.log_interval=1 >/dev/null 2>&1
"$BIN/train" $TINY --set run.name=r --set train.steps=40 --set train.log_interval=1 --resume >"$TMP/r.out" 2>&1
if [ "$(losses "$TMP/a")" = "$(losses "$TMP/r")" ] && [ "$(params "$TMP/a")" = "$(params "$TMP/r")" ]; then
    ok "stop at 15 and resume to 40 equals 40 straight, bit for bit"
else bad "resume is not exact: $(tail -3 "$TMP/r.out")"; fi

# The same with a log interval the stop falls inside: metrics.jsonl also reads as the straight run.
"$BIN/train" $TINY --set run.name=l --set train.steps=40 --set train.log_interval=7 >/dev/null 2>&1
"$BIN/train" $TINY --set run.name=lr --set train.steps=15 --set train.log_interval=7 >/dev/null 2>&1
"$BIN/train" $TINY --set run.name=lr --set train.steps=40 --set train.log_interval=7 --resume >/dev/null 2>&1
if [ -n "$(losses "$TMP/l")" ] && [ "$(losses "$TMP/l")" = "$(losses "$TMP/lr")" ] &&
    [ "$(grep -c . "$TMP/l/metrics.jsonl")" = "$(grep -c . "$TMP/lr/metrics.jsonl")" ]; then
    ok "resuming inside a log interval gives the same metrics lines"
else bad "metrics after resume inside a log interval differ"; fi

# SIGINT mid-run: exit 130 with a checkpoint; resuming gives the uninterrupted run.
"$BIN/train" $TINY --set run.name=s --set train.steps=400 --set train.log_interval=1 --set train.checkpoint_interval=1000 >"$TMP/s.out" 2>&1 &
pid=$!
n=0  # stop it once 20 steps are logged (and never wait more than 60 s)
logged() { c=$(grep -c '"train"' "$TMP/s/metrics.jsonl" 2>/dev/null); echo "${c:-0}"; }
while [ "$(logged)" -lt 20 ] && [ $n -lt 600 ]; do
    sleep 0.1
    n=$((n + 1))
done
kill -INT $pid
wait $pid
rc=$?
"$BIN/train" $TINY --set run.name=full --set train.steps=400 --set train.log_interval=1 >/dev/null 2>&1
if [ $rc -eq 130 ] && [ -f "$TMP/s/latest" ] && grep -q "stopped by signal" "$TMP/s.out"; then
    "$BIN/train" $TINY --set run.name=s --set train.steps=400 --set train.log_interval=1 --set train.checkpoint_interval=1000 --resume >/dev/null 2>&1
    if [ "$(losses "$TMP/s")" = "$(losses "$TMP/full")" ] && [ "$(params "$TMP/s")" = "$(params "$TMP/full")" ]; then
        ok "SIGINT writes a checkpoint (exit 130) and resuming is exact"
    else bad "resume after SIGINT differs"; fi
else bad "SIGINT: exit $rc, output: $(tail -2 "$TMP/s.out")"; fi

# Two ./train on one run folder: the second is refused while the first runs.
"$BIN/train" $TINY --set run.name=busy --set train.steps=3000 --set train.checkpoint_interval=5 >/dev/null 2>&1 &
pid=$!
n=0
while [ ! -s "$TMP/busy/latest" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
if ! "$BIN/train" $TINY --set run.name=busy --set train.steps=3000 --resume >"$TMP/busy.out" 2>&1 && grep -q "in use" "$TMP/busy.out"; then
    ok "a run folder in use by another ./train is refused"
else bad "concurrent run not refused: $(cat "$TMP/busy.out")"; fi
kill $pid 2>/dev/null
wait $pid 2>/dev/null

# An existing run is never overwritten without --resume.
before=$(params "$TMP/a")
if ! "$BIN/train" $TINY --set run.name=a >"$TMP/e.out" 2>&1 && grep -q "already holds a run" "$TMP/e.out" && [ "$(params "$TMP/a")" = "$before" ]; then
    ok "starting over an existing run is refused"
else bad "existing run not protected: $(cat "$TMP/e.out")"; fi

# A change that makes the checkpoint unusable is refused; a safe one is logged.
if ! "$BIN/train" $TINY --set run.name=r --set model.d_model=32 --resume >"$TMP/u.out" 2>&1 && grep -q "model.d_model" "$TMP/u.out"; then
    ok "resume with another model shape is refused naming the key"
else bad "unsafe resume accepted: $(tail -2 "$TMP/u.out")"; fi

# Bad configs: one clear line naming the key, non-zero exit.
if ! "$BIN/train" $TINY --set train.lrr=1 >"$TMP/k.out" 2>&1 && grep -q 'train.lrr' "$TMP/k.out" && grep -q 'train.lr' "$TMP/k.out"; then
    ok "a typo in a key is refused with a suggestion"
else bad "typo: $(cat "$TMP/k.out")"; fi
if ! "$BIN/train" $TINY --set train.lr=fast >"$TMP/t.out" 2>&1 && grep -q 'train.lr' "$TMP/t.out"; then
    ok "a wrong type is refused naming the key"
else bad "wrong type: $(cat "$TMP/t.out")"; fi
if ! "$BIN/train" "$TMP/missing.json" >"$TMP/m.out" 2>&1 && grep -q "missing.json" "$TMP/m.out"; then
    ok "a missing config file is named"
else bad "missing config: $(cat "$TMP/m.out")"; fi

# A corrupted checkpoint is refused naming the file and the section.
ck="$TMP/a/$(cat "$TMP/a/latest")"
$PY - "$ck" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xFF
open(p, 'wb').write(b)
PYEOF
if ! "$BIN/train" $TINY --set run.name=a --set train.steps=80 --resume >"$TMP/x.out" 2>&1 && grep -q "$(basename "$ck")" "$TMP/x.out" && grep -qi "crc\|section" "$TMP/x.out"; then
    ok "a corrupted checkpoint is refused naming file and section"
else bad "corrupted checkpoint: $(cat "$TMP/x.out")"; fi

# The embedded default (./train without a config) is configs/flipflop_tiny.json.
"$BIN/train" --set run.out_dir="$TMP/x" --set run.name=d --set train.steps=1 >/dev/null 2>&1
"$BIN/train" configs/flipflop_tiny.json --set run.out_dir="$TMP/y" --set run.name=d --set train.steps=1 >/dev/null 2>&1
if [ -f "$TMP/x/d/config.json" ] && [ "$(grep -v out_dir "$TMP/x/d/config.json")" = "$(grep -v out_dir "$TMP/y/d/config.json")" ]; then
    ok "the embedded default config equals configs/flipflop_tiny.json"
else bad "embedded default and configs/flipflop_tiny.json differ"; fi

# Every shipped config is valid and builds its task and model (language-model configs on a small
# stand-in corpus); the per-PE configs are what scripts/make_configs.py writes.
mkdir -p "$TMP/lm"
for f in wiki.train.raw wiki.valid.raw wiki.test.raw train.txt valid.txt test.txt; do
    yes "def f(x):  return x + 1  # some text for the loader" | head -2000 >"$TMP/lm/$f"
done
mkdir -p "$TMP/gpt2"  # GPT-2's tokenizer for the text configs: the repository's copies
for f in encoder.json vocab.bpe; do gunzip -c "tests/data/gpt2/$f.gz" >"$TMP/gpt2/$f"; done
all_ok=1
for f in configs/*.json; do
    set -- "$f"
    grep -q '"name": "lm"' "$f" && set -- "$f" --set task.data_dir="$TMP/lm" --set task.cache_dir="$TMP/cache"
    grep -q '"tokenizer": "gpt2"' "$f" && set -- "$@" --set task.bpe_dir="$TMP/gpt2"
    if ! "$BIN/train" "$@" --dry-run >"$TMP/dry.out" 2>&1; then all_ok=0; echo "  $f: $(cat "$TMP/dry.out")"; fi
done
if [ $all_ok = 1 ] && python3 scripts/make_configs.py --check; then
    ok "every config in configs/ is valid, builds its task and model, and is up to date"
else bad "a config is invalid or out of date"; fi

# README's config table is the schema's.
"$BIN/train" --keys > "$TMP/keys.md"
sed -n '/^<!-- keys:/,/^<!-- \/keys -->/p' README.md | sed '1d;$d' > "$TMP/readme_keys.md"
if [ -s "$TMP/keys.md" ] && cmp -s "$TMP/keys.md" "$TMP/readme_keys.md"; then
    ok "README's config table matches ./train --keys"
else bad "README's config table is out of date: run sh scripts/readme_keys.sh"; fi

finish train
