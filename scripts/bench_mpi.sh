#!/bin/sh
# `make bench-mpi`: ranks against threads on one machine. Trains one model the same number of steps
# as 1 process × 2 threads (the default build) and as 2 MPI ranks × 1 thread each (the MPI build),
# and prints each one's training tokens/s (the mean of its progress lines after the first) and, for
# the ranks, the time per step spent summing the gradients (src/dist.h). Both run in this one
# invocation, one after the other: on a shared machine compare the ratio, not the figures.
#   MODEL=tiny (default; configs/flipflop_tiny.json, 0.1 M parameters) or flipflop
#   (configs/flipflop_cope.json at batch 16: make bench's flip-flop model), STEPS (default 60).
BIN=${BIN:-.}
MPI_BIN=${MPI_BIN:-build-mpi/bin}
STEPS=${STEPS:-60}
MODEL=${MODEL:-tiny}
if ! command -v mpirun >/dev/null 2>&1 || [ ! -x "$MPI_BIN/train" ]; then
    echo "bench-mpi: skipped: no mpirun or no $MPI_BIN/train (make MPI=1)"
    exit 0
fi
case $MODEL in
tiny) CONFIG=configs/flipflop_tiny.json ;;
flipflop) CONFIG="configs/flipflop_cope.json --set train.batch_size=16" ;;
*) echo "bench-mpi: MODEL=$MODEL: expected tiny or flipflop" >&2; exit 2 ;;
esac
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export OMP_WAIT_POLICY=passive
COMMON="$CONFIG --set run.out_dir=$OUT --set train.steps=$STEPS --set train.log_interval=$((STEPS / 6))
        --set train.eval_interval=0 --set task.eval_sequences=32 --set train.eval_sequences=32
        --set train.checkpoint_interval=$STEPS"
# The mean of field $1 of the progress lines after the first (warm-up) of output $2.
mean_of() { grep '^step' "$2" | sed 1d | sed -n "s,.* \([0-9.]*\) $1.*,\1,p" | awk '{s += $1; n++} END {if (n) printf "%.1f", s / n}'; }

"$BIN/train" $COMMON --set run.name=threads --set run.threads=2 >"$OUT/threads.out" 2>&1 ||
    { echo "bench-mpi: 1 × 2 threads failed: $(tail -2 "$OUT/threads.out")"; exit 1; }
mpirun --allow-run-as-root --oversubscribe --bind-to core -np 2 "$MPI_BIN/train" $COMMON --set run.name=ranks \
    --set run.threads=1 >"$OUT/ranks.out" 2>&1 ||
    { echo "bench-mpi: 2 ranks × 1 thread failed: $(tail -2 "$OUT/ranks.out")"; exit 1; }
# The same split in one process: 2 micro-batches at once on model replicas, one thread each (src/micro.h).
"$BIN/train" $COMMON --set run.name=micro --set run.threads=2 --set train.grad_accum=2 >"$OUT/micro.out" 2>&1 ||
    { echo "bench-mpi: 1 × 2 threads, 2 micro-batches failed: $(tail -2 "$OUT/micro.out")"; exit 1; }
t=$(mean_of tok/s "$OUT/threads.out")
mt=$(mean_of tok/s "$OUT/micro.out")
r=$(mean_of tok/s "$OUT/ranks.out")
ms=$(mean_of ms/step "$OUT/ranks.out")
params=$(sed -n 's/^model: \([0-9]*\) parameters.*/\1/p' "$OUT/ranks.out")
echo "== ranks vs threads, ${CONFIG%% *} ($params parameters), $STEPS steps, same global batch"
printf '1 rank  × 2 threads: %10s tok/s\n' "$t"
printf '1 rank  × 2 threads, 2 micro-batches at once: %10s tok/s\n' "$mt"
printf '2 ranks × 1 thread : %10s tok/s, allreduce %s ms/step (%s bytes of gradient per rank)\n' "$r" "$ms" "$((params * 4))"
awk -v r="$r" -v t="$t" 'BEGIN {if (t > 0) printf "ranks / threads    : %.2f\n", r / t}'
