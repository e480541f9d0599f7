#!/bin/sh
# `make bench`: training-step cost of the flip-flop model (4 layers, d=256, 4 heads, T=512,
# batch 16) and a tiny model at 1 and 2 threads, every position encoding on the flip-flop model,
# and CoPE against no PE at longer contexts (batch shrunk to keep 8192 tokens per step).
# One process per line, so each line's peak memory is its own.
BUILD=${BUILD:-build}
BENCH="$BUILD/bench"
STEPS=${STEPS:-4}
set -e
echo "== flip-flop model and tiny model, 1 and 2 threads"
for th in 1 2; do
    for pe in none abs; do
        $BENCH --steps "$STEPS" --set run.threads=$th --set pe.type=$pe
    done
    $BENCH --steps 20 --set run.threads=$th --set pe.type=cope --set model.n_layers=2 --set model.d_model=64 \
        --set model.block_size=128
done
echo "== every position encoding, flip-flop model, 2 threads"
for pe in none abs rel rope cope cope+rel cope+rope abs+rel; do
    $BENCH --steps "$STEPS" --set run.threads=2 --set pe.type=$pe
done
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    echo "== PyTorch baseline, same model, 2 threads (scripts/bench_torch.py)"
    for pe in none cope; do /usr/bin/python3 scripts/bench_torch.py --pe $pe --threads 2 --steps 2; done
fi
echo "== CoPE vs none at longer contexts (8192 tokens per step), 2 threads"
for tb in 1024:8 2048:4; do
    T=${tb%:*}
    B=${tb#*:}
    for pe in none cope; do
        $BENCH --steps "$STEPS" --set run.threads=2 --set pe.type=$pe --set model.block_size=$T --set train.batch_size=$B
    done
done
