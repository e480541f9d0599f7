#!/bin/sh
# End-to-end tests of what a run survives: kills before the first checkpoint and during
# evaluations, extending a finished run, divergence, non-finite checkpoints, a full disk, a corrupt
# latest checkpoint, memory refusals, ./eval racing a training run, and ./eval's argument checks.
# Every comparison is between two runs on this machine (same config, seed and threads give the
# same bits), never against recorded numbers. Prints `recovery: N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-.}
. tests/common.sh
MNT=""
trap '[ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$TMP"' EXIT
PY=python3
# warmup_steps 100 > every step count here: the learning rate does not depend on train.steps, so a
# run of 20 steps resumed to 40 is the run of 40 (the cosine decay would differ otherwise).
TINY="configs/flipflop_tiny.json --set run.out_dir=$TMP --set run.threads=2 --set train.eval_sequences=64"

# metrics.jsonl without the timing field, and the parameters of a run's latest checkpoint.
metrics() { sed -E 's/, "tokens_per_s": [0-9.e+-]+//' "$1/metrics.jsonl"; }
params() { $PY scripts/checkpoint.py "$1/$(cat "$1/latest")" --dump params; }
same_run() {  # run_a run_b: identical metrics lines and final parameters
    [ -s "$1/metrics.jsonl" ] && [ "$(metrics "$1")" = "$(metrics "$2")" ] && [ "$(params "$1")" = "$(params "$2")" ]
}
# Starts ./train in the background and SIGKILLs it once FILE is not empty (polling), or when it ends.
kill_when() {  # file args...
    f=$1
    shift
    "$BIN/train" "$@" >>"$TMP/kill.out" 2>&1 &
    pid=$!
    while kill -0 $pid 2>/dev/null && [ ! -s "$f" ]; do sleep 0.02; done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
}

# --- 1. Killed before the first checkpoint: --resume starts again from step 0 -----------------------
# The kill comes once a training line is logged, so config.json is written (metrics.jsonl itself is
# created, empty, just before it).
STEPS0="--set train.steps=60 --set train.log_interval=1 --set train.checkpoint_interval=1000 --set train.eval_interval=0"
"$BIN/train" $TINY $STEPS0 --set run.name=s0 >/dev/null 2>&1
kill_when "$TMP/k0/metrics.jsonl" $TINY $STEPS0 --set run.name=k0
if [ -e "$TMP/k0/latest" ]; then
    bad "the run to be killed finished before the kill (make it longer)"
else
    "$BIN/train" $TINY $STEPS0 --set run.name=k0 >"$TMP/k0.new" 2>&1
    rc=$?
    if [ $rc -eq 2 ] && grep -q "stopped before its first checkpoint (--resume starts it again from step 0)" "$TMP/k0.new"; then
        ok "a fresh start over a run killed before its first checkpoint says that --resume starts it from step 0"
    else bad "fresh start over a checkpoint-less run (exit $rc): $(cat "$TMP/k0.new")"; fi
    "$BIN/train" $TINY $STEPS0 --set run.name=k0 --set model.d_model=32 --resume >"$TMP/k0.bad" 2>&1
    rc=$?
    if [ $rc -eq 2 ] && grep -q "model.d_model" "$TMP/k0.bad"; then
        ok "resuming a checkpoint-less run with another model is refused naming the key"
    else bad "checkpoint-less resume with another config (exit $rc): $(cat "$TMP/k0.bad")"; fi
    "$BIN/train" $TINY $STEPS0 --set run.name=k0 --resume >"$TMP/k0.res" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q "no checkpoint yet, so it starts again from step 0" "$TMP/k0.res" && same_run "$TMP/s0" "$TMP/k0"; then
        ok "--resume of a run killed before its first checkpoint starts from step 0 and equals the straight run"
    else bad "checkpoint-less resume (exit $rc): $(tail -3 "$TMP/k0.res")"; fi
fi

# --- 2. Evaluation lines survive kills --------------------------------------------------------------
EV="--set train.log_interval=7 --set train.eval_interval=10 --set train.checkpoint_interval=10"
"$BIN/train" $TINY $EV --set run.name=s40 --set train.steps=40 >/dev/null 2>&1
"$BIN/train" $TINY $EV --set run.name=s60 --set train.steps=60 >/dev/null 2>&1

# The state a kill during the evaluation of step 20 leaves: checkpoint 20 written, its evaluation
# lines missing, the last one cut mid-write.
"$BIN/train" $TINY $EV --set run.name=mid --set train.steps=20 >/dev/null 2>&1
grep -v '"step": 20, "split": "\(valid\|test\|sparse\|dense\)"' "$TMP/mid/metrics.jsonl" >"$TMP/m.tmp"
printf '{"step": 20, "split": "va' >>"$TMP/m.tmp"
mv "$TMP/m.tmp" "$TMP/mid/metrics.jsonl"
"$BIN/train" $TINY $EV --set run.name=mid --set train.steps=40 --resume >"$TMP/mid.out" 2>&1
if same_run "$TMP/s40" "$TMP/mid"; then
    ok "a kill during a mid-run evaluation: --resume evaluates that step again, metrics.jsonl equals the straight run"
else bad "mid-run evaluation kill: $(diff "$TMP/s40/metrics.jsonl" "$TMP/mid/metrics.jsonl" | head -5)"; fi

# A kill during the final evaluation: every final line is missing; --resume writes them.
"$BIN/train" $TINY $EV --set run.name=fin --set train.steps=40 >/dev/null 2>&1
grep -v '"step": 40, "split": "\(valid\|test\|sparse\|dense\)"' "$TMP/fin/metrics.jsonl" >"$TMP/m.tmp"
mv "$TMP/m.tmp" "$TMP/fin/metrics.jsonl"
"$BIN/train" $TINY $EV --set run.name=fin --set train.steps=40 --resume >"$TMP/fin.out" 2>&1
if same_run "$TMP/s40" "$TMP/fin" && [ "$(grep -c '"step": 40, "split": "\(valid\|test\|sparse\|dense\)"' "$TMP/fin/metrics.jsonl")" -eq 4 ]; then
    ok "a kill during the final evaluation: --resume writes the four final lines again"
else bad "final evaluation kill: $(tail -3 "$TMP/fin.out")"; fi

# Extending a finished run: the old final step's extra lines (test/sparse/dense, the off-interval
# training line) go, so the result reads as the 60 steps straight.
"$BIN/train" $TINY $EV --set run.name=fin --set train.steps=60 --resume >"$TMP/ext.out" 2>&1
if same_run "$TMP/s60" "$TMP/fin"; then
    ok "extending a finished run to 60 steps equals 60 steps straight (metrics.jsonl and parameters)"
else bad "extending a finished run: $(diff "$TMP/s60/metrics.jsonl" "$TMP/fin/metrics.jsonl" | head -5)"; fi

# Real kills at arbitrary moments (long evaluations, so many land inside one), resumed each time.
KILLS="--set train.eval_sequences=1024 --set run.threads=1"
"$BIN/train" $TINY $EV $KILLS --set run.name=ks --set train.steps=40 >/dev/null 2>&1
n=0
for delay in 0.4 0.9 0.6 1.3 0.7 1.1 0.5 1.7 0.8 1.0 1.2 0.6; do
    resume=""
    [ -e "$TMP/kk/config.json" ] && resume=--resume
    "$BIN/train" $TINY $EV $KILLS --set run.name=kk --set train.steps=40 $resume >>"$TMP/kk.out" 2>&1 &
    pid=$!
    sleep $delay
    kill -9 $pid 2>/dev/null && n=$((n + 1))
    wait $pid 2>/dev/null
done
"$BIN/train" $TINY $EV $KILLS --set run.name=kk --set train.steps=40 --resume >>"$TMP/kk.out" 2>&1
if same_run "$TMP/ks" "$TMP/kk"; then
    ok "$n SIGKILLs at arbitrary moments, each followed by --resume: metrics.jsonl and parameters equal the straight run"
else bad "after $n SIGKILLs the run differs: $(diff "$TMP/ks/metrics.jsonl" "$TMP/kk/metrics.jsonl" | head -5)"; fi

# --- 3. Divergence ------------------------------------------------------------------------------------
DIV="--set run.name=div --set train.lr=10 --set train.weight_decay=10 --set train.grad_clip=0 --set train.steps=60
     --set train.checkpoint_interval=2 --set train.log_interval=1 --set train.eval_interval=4"
"$BIN/train" $TINY $DIV >"$TMP/div.out" 2>&1
rc=$?
if [ $rc -eq 4 ] && grep -q "diverged at step [0-9]*: " "$TMP/div.out" && grep -q "train.lr" "$TMP/div.out" &&
    grep -q "is finite and kept" "$TMP/div.out"; then
    ok "a diverging run stops with exit 4, naming the step, the latest finite checkpoint and the keys to change"
else bad "divergence (exit $rc): $(tail -3 "$TMP/div.out")"; fi
if $PY -c '
import json, math, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in d.values()), line
' "$TMP/div/metrics.jsonl" 2>"$TMP/json.err" && "$BIN/eval" "$TMP/div" --split valid --sequences 8 >"$TMP/dive.out" 2>&1; then
    ok "after divergence every metrics line is JSON with finite numbers and the latest checkpoint evaluates"
else bad "after divergence: $(cat "$TMP/json.err" "$TMP/dive.out" | tail -3)"; fi

# A checkpoint holding a NaN (well-formed, CRCs right) is refused by ./eval and --resume.
"$BIN/train" $TINY --set run.name=nan --set train.steps=10 >/dev/null 2>&1
ck="$TMP/nan/$(cat "$TMP/nan/latest")"
$PY - "$ck" <<'EOF'
import struct, sys
sys.path.insert(0, "scripts")
import checkpoint
s = checkpoint.read(sys.argv[1])
p = bytearray(s["params"])
p[4 * 3:4 * 4] = struct.pack("<f", float("nan"))
s["params"] = bytes(p)
checkpoint.write(sys.argv[1], s)
EOF
"$BIN/eval" "$TMP/nan" >"$TMP/nan.e" 2>&1
rc1=$?
"$BIN/train" $TINY --set run.name=nan --set train.steps=20 --resume >"$TMP/nan.r" 2>&1
rc2=$?
if [ $rc1 -eq 2 ] && grep -q "tensor wte holds NaN at index 3" "$TMP/nan.e" && [ $rc2 -eq 2 ] &&
    grep -q "tensor wte holds NaN at index 3" "$TMP/nan.r"; then
    ok "a checkpoint with a NaN parameter is refused by ./eval and --resume naming the tensor and index"
else bad "NaN checkpoint (eval exit $rc1, resume exit $rc2): $(cat "$TMP/nan.e" "$TMP/nan.r" | tail -4)"; fi

# --- 4. A corrupt latest checkpoint points at the intact older one ------------------------------------
CK="--set train.checkpoint_interval=10 --set train.keep_checkpoints=3 --set train.log_interval=5"
"$BIN/train" $TINY $CK --set run.name=c40 --set train.steps=40 >/dev/null 2>&1
"$BIN/train" $TINY $CK --set run.name=cor --set train.steps=20 >/dev/null 2>&1
ck="$TMP/cor/$(cat "$TMP/cor/latest")"
printf '\377' | dd of="$ck" bs=1 seek=5000 conv=notrunc 2>/dev/null
"$BIN/train" $TINY $CK --set run.name=cor --set train.steps=40 --resume >"$TMP/cor.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "CRC mismatch" "$TMP/cor.out" &&
    grep -q "ckpt_00000010.bin is intact: continue from it with --resume --checkpoint ckpt_00000010.bin" "$TMP/cor.out"; then
    ok "a corrupt latest checkpoint is refused, pointing at the intact older one and the flag to use it"
else bad "corrupt latest (exit $rc): $(cat "$TMP/cor.out")"; fi
"$BIN/train" $TINY $CK --set run.name=cor --set train.steps=40 --resume --checkpoint ckpt_00000010.bin >"$TMP/cor2.out" 2>&1
if same_run "$TMP/c40" "$TMP/cor"; then
    ok "--resume --checkpoint of the older checkpoint gives the straight run"
else bad "resume from the older checkpoint: $(tail -3 "$TMP/cor2.out")"; fi

# --- 5. A full disk (a small tmpfs; needs root to mount) -----------------------------------------------
mkdir -p "$TMP/full"
if mount -t tmpfs -o size=2400k tmpfs "$TMP/full" 2>/dev/null; then
    MNT="$TMP/full"
    FULL="configs/flipflop_tiny.json --set run.out_dir=$TMP/full --set run.threads=2 --set run.name=f
          --set train.eval_sequences=64 --set train.checkpoint_interval=10 --set train.keep_checkpoints=1"
    "$BIN/train" $FULL --set train.steps=30 >"$TMP/full.out" 2>&1
    rc=$?
    if [ $rc -eq 1 ] && grep -q "checkpoint of step 20 not written" "$TMP/full.out" &&
        grep -q "ckpt_00000010.bin, which .latest. names, is intact" "$TMP/full.out" &&
        [ "$(cat "$TMP/full/f/latest")" = ckpt_00000010.bin ] && "$BIN/eval" "$TMP/full/f" --split valid --sequences 8 >/dev/null 2>&1; then
        ok "a full disk stops the run naming the checkpoint not written and the intact one latest names"
    else bad "full disk (exit $rc): $(tail -3 "$TMP/full.out")"; fi
    cp -r "$TMP/full/f" "$TMP/fresume"
    umount "$MNT" && MNT=""
    "$BIN/train" configs/flipflop_tiny.json --set run.out_dir=$TMP --set run.threads=2 --set run.name=fresume \
        --set train.eval_sequences=64 --set train.checkpoint_interval=10 --set train.keep_checkpoints=1 --set train.steps=30 \
        --resume >"$TMP/fr.out" 2>&1
    "$BIN/train" $TINY --set run.name=f30 --set train.checkpoint_interval=10 --set train.keep_checkpoints=1 \
        --set train.steps=30 >/dev/null 2>&1
    if same_run "$TMP/f30" "$TMP/fresume"; then
        ok "with room again, --resume continues from the intact checkpoint and equals the straight run"
    else bad "resume after a full disk: $(tail -3 "$TMP/fr.out")"; fi
else
    echo "skip full-disk tests: cannot mount a tmpfs here (not root)"
fi

# --- 6. Memory is budgeted before allocating -------------------------------------------------------
BIG="--set model.d_model=8192 --set model.n_layers=4 --set model.n_heads=8"
$PY - "$BIN/train" $TINY $BIG --dry-run >"$TMP/dry.out" 2>&1 <<'EOF'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(r.stdout, r.stderr)
rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("exit", r.returncode, "maxrss_mb", int(rss_mb))
EOF
if grep -q "exit 0" "$TMP/dry.out" && grep -q "Adam moments (2) *24\.[0-9]* GiB" "$TMP/dry.out" &&
    [ "$(sed -nE 's/.*maxrss_mb ([0-9]+).*/\1/p' "$TMP/dry.out")" -lt 300 ]; then
    ok "--dry-run of a 3.2-billion-parameter model prints its memory without allocating it ($(grep -o 'maxrss_mb [0-9]*' "$TMP/dry.out") MB)"
else bad "dry run of a huge model: $(cat "$TMP/dry.out")"; fi
"$BIN/train" $TINY $BIG --set run.name=big --memory-limit 20G >"$TMP/big.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "needs [0-9.]* GiB of memory, 20.00 GiB available; largest: Adam moments (2) 24\.[0-9]* GiB (shrink: model.d_model" "$TMP/big.out" &&
    [ ! -e "$TMP/big" ]; then
    ok "a run needing more memory than allowed is refused naming the total, the largest parts and the keys"
else bad "memory refusal (exit $rc): $(cat "$TMP/big.out")"; fi
# (inference mode needs ~17 GB at 2^20 tokens: more than the limit given here, less than some machines have)
"$BIN/eval" "$TMP/s40" --lengths 128,1048576 --split valid --sequences 8 --memory-limit 4G >"$TMP/len.out" 2>&1
rc=$?
if [ $rc -eq 3 ] && grep -q "valid .* 1048576 .*refused: needs .* of memory" "$TMP/len.out" &&
    grep -q '"length": 128, ' "$TMP/s40/eval.jsonl"; then
    ok "./eval refuses a length whose activations do not fit, naming the need, and runs the others (exit 3)"
else bad "eval memory refusal (exit $rc): $(cat "$TMP/len.out")"; fi

"$BIN/eval" "$TMP/s40" --lengths 2147483646 >"$TMP/len2.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q -- '--lengths: "2147483646" is not an integer from 1 to 1048576' "$TMP/len2.out"; then
    ok "a length past the longest context is refused before any work"
else bad "--lengths 2147483646 (exit $rc): $(cat "$TMP/len2.out")"; fi

# --- 7. ./eval: ranges, overrides, other runs' checkpoints, a training run pruning under it -------------
"$BIN/eval" "$TMP/s40" --heatmap "$TMP/h" --head 4294967296 >"$TMP/head.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q -- '--head "4294967296": expected an integer from 0 to 2147483647' "$TMP/head.out"; then
    ok "an out-of-range integer option is refused, not wrapped"
else bad "--head 4294967296 (exit $rc): $(cat "$TMP/head.out")"; fi
"$BIN/eval" "$TMP/s40" --set task.name=lm >"$TMP/tn.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--set task.name=lm: the model was trained on task flipflop" "$TMP/tn.out"; then
    ok "--set task.name is refused saying the model's task"
else bad "--set task.name (exit $rc): $(cat "$TMP/tn.out")"; fi
"$BIN/train" $TINY --set run.name=other --set pe.type=rope --set train.steps=10 >/dev/null 2>&1
"$BIN/eval" "$TMP/s40" --checkpoint "$TMP/other/$(cat "$TMP/other/latest")" >"$TMP/oth.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "was not written by the run" "$TMP/oth.out" && grep -q "pe.type" "$TMP/oth.out"; then
    ok "a checkpoint of another run is refused instead of appended to this run's eval.jsonl"
else bad "other run's checkpoint (exit $rc): $(cat "$TMP/oth.out")"; fi
sets=""
i=0
while [ $i -lt 300 ]; do sets="$sets --set train.lr=0.001"; i=$((i + 1)); done
if "$BIN/train" $TINY $sets --dry-run >"$TMP/sets.out" 2>&1; then
    ok "300 --set options are accepted (no fixed limit)"
else bad "300 --set: $(cat "$TMP/sets.out")"; fi

# ./eval while ./train writes a checkpoint every step and keeps one: each read is one pass over one
# file, re-resolved when the trainer pruned it meanwhile.
"$BIN/train" $TINY --set run.name=race --set train.steps=5 >/dev/null 2>&1
"$BIN/train" $TINY --set run.name=race --set train.steps=400 --set train.checkpoint_interval=1 \
    --set train.keep_checkpoints=1 --resume >/dev/null 2>&1 &
pid=$!
fails=0
i=0
while [ $i -lt 15 ]; do
    "$BIN/eval" "$TMP/race" --split valid --sequences 4 >"$TMP/race.out" 2>&1 || { fails=$((fails + 1)); cat "$TMP/race.out"; }
    i=$((i + 1))
done
kill $pid 2>/dev/null
wait $pid 2>/dev/null
if [ $fails -eq 0 ]; then ok "15 evaluations of a run that prunes its checkpoints every step all succeed"
else bad "$fails of 15 evaluations during training failed"; fi

finish recovery
