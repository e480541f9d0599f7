#!/bin/sh
# Data-parallel training under mpirun (README, "Several processes: MPI"), with the MPI build of
# ./train (make MPI=1; `make test` builds it when mpicc is installed, else this test skips):
#   2 ranks × B/2 give the bits of 1 process with 2 micro-batches of B/2 (train.grad_accum=2), in
#   every loss, evaluation and parameter; Ctrl-C to mpirun (SIGTERM to the ranks) and a signal to one
#   rank stop the job with one checkpoint, and --resume then equals the uninterrupted run; a 2-rank
#   checkpoint resumes on 1 rank; a bad input on one rank, or a rank killed, ends the job with that
#   rank's message instead of hanging. Prints `mpi: N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-.}                        # the default build's train
MPI_BIN=${MPI_BIN:-build-mpi/bin}    # the MPI build's
. tests/common.sh
if ! command -v mpicc >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1; then
    echo "skipped: no mpicc (install libopenmpi-dev openmpi-bin)"
    finish mpi
    exit
fi
if [ ! -x "$MPI_BIN/train" ]; then
    bad "$MPI_BIN/train is missing: build it with make MPI=1"
    finish mpi
    exit
fi
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# As root on a machine with fewer cores than ranks OpenMPI needs both options; the kill timeout
# gives the ranks 2 s to finish their step and write the checkpoint after mpirun's SIGTERM (mpirun
# waits as long again before it, so a failure ends the job in about 4 s).
MPIRUN="mpirun --allow-run-as-root --oversubscribe --mca odls_base_sigkill_timeout 2"
TINY="configs/flipflop_tiny.json --set run.out_dir=$TMP --set run.threads=1 --set train.log_interval=1
      --set train.eval_interval=10 --set task.eval_sequences=64 --set train.eval_sequences=64"
PY=python3

# The metrics of a run (tokens_per_s varies and is dropped), and its latest checkpoint's parameters.
metrics() { sed -E 's/, "tokens_per_s": [0-9.e+-]+//' "$1/metrics.jsonl"; }
params() { $PY scripts/checkpoint.py "$1/$(cat "$1/latest")" --dump params; }
same_run() { [ -s "$1/metrics.jsonl" ] && [ "$(metrics "$1")" = "$(metrics "$2")" ] && [ "$(params "$1")" = "$(params "$2")" ]; }

# --- 1. 2 ranks × 16 sequences against 1 process × 2 micro-batches of 16 ---------------------------
# Each rank's gradient is its micro-batch's from zero, as the process's first and second micro-batch
# gradients are; both sum them in the same order (rank order: src/dist.h), and both add the losses
# of the sequences and micro-batches in one order, so every bit must agree, evaluations included.
"$BIN/train" $TINY --set run.name=one --set train.steps=30 --set train.grad_accum=2 >"$TMP/one.out" 2>&1 ||
    bad "1 process failed: $(tail -2 "$TMP/one.out")"
$MPIRUN -np 2 "$MPI_BIN/train" $TINY --set run.name=two --set train.steps=30 >"$TMP/two.out" 2>&1 ||
    bad "2 ranks failed: $(tail -2 "$TMP/two.out")"
if same_run "$TMP/one" "$TMP/two" && grep -q '"split": "test"' "$TMP/two/metrics.jsonl"; then
    ok "2 ranks × B/2 equal 1 process × 2 micro-batches of B/2, bit for bit (losses, evaluations, parameters)"
else bad "2 ranks differ from 1 process: $(diff "$TMP/one/metrics.jsonl" "$TMP/two/metrics.jsonl" | head -3)"; fi
if [ "$(grep -c "^step" "$TMP/two.out")" = 30 ] && grep -q "ranks: 2 (MPI)" "$TMP/two.out"; then
    ok "rank 0 alone prints the progress"
else bad "progress lines: $(grep -c "^step" "$TMP/two.out"), expected 30 (one rank's)"; fi

# --- 2. A 2-rank checkpoint resumes on 1 rank, and a 1-process one on 2 ranks ------------------------
$MPIRUN -np 2 "$MPI_BIN/train" $TINY --set run.name=x --set train.steps=15 >/dev/null 2>&1
"$BIN/train" $TINY --set run.name=x --set train.steps=30 --set train.grad_accum=2 --resume >"$TMP/x.out" 2>&1
if same_run "$TMP/x" "$TMP/one"; then ok "a 2-rank checkpoint resumed by 1 process continues bit for bit"
else bad "2 ranks then 1 process differs: $(tail -2 "$TMP/x.out")"; fi
"$BIN/train" $TINY --set run.name=y --set train.steps=15 --set train.grad_accum=2 >/dev/null 2>&1
$MPIRUN -np 2 "$MPI_BIN/train" $TINY --set run.name=y --set train.steps=30 --resume >"$TMP/y.out" 2>&1
if same_run "$TMP/y" "$TMP/one"; then ok "a 1-process checkpoint resumed by 2 ranks continues bit for bit"
else bad "1 process then 2 ranks differs: $(tail -2 "$TMP/y.out")"; fi

# --- 3. Signals: Ctrl-C to mpirun, and SIGTERM to one rank only --------------------------------------
LONG="$TINY --set train.steps=200 --set train.checkpoint_interval=1000"
$MPIRUN -np 2 "$MPI_BIN/train" $LONG --set run.name=full >/dev/null 2>&1
logged() { c=$(grep -c '"train"' "$1/metrics.jsonl" 2>/dev/null); echo "${c:-0}"; }
wait_logged() {  # until run $1 has logged 20 steps (at most 60 s)
    n=0
    while [ "$(logged "$1")" -lt 20 ] && [ $n -lt 600 ]; do
        sleep 0.1
        n=$((n + 1))
    done
}
# The rank of each of mpirun $1's processes: "PID RANK" lines.
ranks_of() {
    for p in $(ps -o pid= --ppid "$1"); do
        r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
        [ -n "$r" ] && echo "$p $r"
    done
}
for how in mpirun rank1; do
    $MPIRUN -np 2 "$MPI_BIN/train" $LONG --set run.name="sig_$how" >"$TMP/sig_$how.out" 2>&1 &
    pid=$!
    wait_logged "$TMP/sig_$how"
    if [ $how = mpirun ]; then kill -INT $pid; else kill -TERM "$(ranks_of $pid | awk '$2 == 1 {print $1}')"; fi
    timeout 60 sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.2; done"
    wait $pid
    rc=$?
    step=$(sed -n 's/.*stopped by signal 15 at step \([0-9]*\).*/\1/p' "$TMP/sig_$how.out")
    if [ $rc -ne 0 ] && [ -n "$step" ] && [ "$(cat "$TMP/sig_$how/latest")" = "$(printf 'ckpt_%08d.bin' "$step")" ] &&
        [ "$(grep -c "stopped by signal" "$TMP/sig_$how.out")" = 1 ] && [ "$step" -lt 200 ]; then
        $MPIRUN -np 2 "$MPI_BIN/train" $LONG --set run.name="sig_$how" --resume >/dev/null 2>&1
        if same_run "$TMP/sig_$how" "$TMP/full"; then ok "signal ($how): every rank stops at step $step, one checkpoint, --resume is exact"
        else bad "signal ($how): resume differs from the uninterrupted run"; fi
    else bad "signal ($how): exit $rc, stopped at step '$step': $(tail -2 "$TMP/sig_$how.out")"; fi
done

# --- 4. Failures end the job, with the failing rank's message ---------------------------------------
# A bad input on rank 1 only (mpirun's A : B runs two command lines as one job).
timeout 60 $MPIRUN -np 1 "$MPI_BIN/train" $TINY --set run.name=bad : \
    -np 1 "$MPI_BIN/train" $TINY --set run.name=bad --set train.lr=fast >"$TMP/bad.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "train: rank 1: .*train.lr" "$TMP/bad.out" && [ ! -d "$TMP/bad" ]; then
    ok "a bad input on rank 1 ends the job (exit $rc) with rank 1's message, no run folder"
else bad "bad input on rank 1: exit $rc (124: hung): $(tail -3 "$TMP/bad.out")"; fi
# A config every rank refuses: one message, not one per rank.
timeout 60 $MPIRUN -np 2 "$MPI_BIN/train" $TINY --set run.name=bad2 --set train.batch_size=33 >"$TMP/bad2.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && [ "$(grep -c "train.batch_size 33" "$TMP/bad2.out")" = 1 ]; then
    ok "a batch that 2 ranks do not divide is refused once (exit 2)"
else bad "batch 33 on 2 ranks: exit $rc: $(grep train "$TMP/bad2.out" | head -3)"; fi
# A rank killed mid-run: mpirun ends the job.
$MPIRUN -np 2 "$MPI_BIN/train" $LONG --set run.name=killed >"$TMP/killed.out" 2>&1 &
pid=$!
wait_logged "$TMP/killed"
kill -KILL "$(ranks_of $pid | awk '$2 == 1 {print $1}')"
timeout 60 sh -c "while kill -0 $pid 2>/dev/null; do sleep 0.2; done"
alive=$?
wait $pid
rc=$?
if [ $alive -eq 0 ] && [ $rc -ne 0 ]; then ok "a rank killed mid-run ends the job (exit $rc)"
else
    kill -KILL $pid 2>/dev/null
    bad "a rank killed mid-run: the job still ran after 60 s (or exit $rc)"
fi

finish mpi
