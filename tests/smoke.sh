#!/bin/sh
# Short end-to-end runs of every program, for builds whose runs are slow: `make sanitize` runs it
# with AddressSanitizer and UndefinedBehaviorSanitizer, under which a memory error, a leak or
# undefined behaviour ends a program with a report and a non-zero exit. ./train a few steps of the
# tiny config (with evaluations and checkpoints), the same run stopped and resumed, ./eval at two
# lengths and its heat maps, a tiny language model through ./train, ./sample and ./eval, and one
# refusal of each program, and the benchmark's attention alone. Prints `smoke: N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-.}  # the folder of train, eval, sample (tests/run_tests.sh)
. tests/common.sh
# A sanitizer's report in a program's output (it is also a non-zero exit, but a refusal exits
# non-zero anyway).
clean() { ! grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$1"; }
# runs NAME PROGRAM ARGS...: expects exit 0 and no report; the output is in $TMP/NAME.out.
runs() {
    name=$1
    shift
    if "$@" >"$TMP/$name.out" 2>&1 && clean "$TMP/$name.out"; then ok "$name"; else
        bad "$name (exit $?):"
        tail -40 "$TMP/$name.out"
    fi
}
# refused NAME MESSAGE PROGRAM ARGS...: expects a non-zero exit with MESSAGE and no report.
refused() {
    name=$1 message=$2
    shift 2
    if ! "$@" >"$TMP/$name.out" 2>&1 && grep -q "$message" "$TMP/$name.out" && clean "$TMP/$name.out"; then
        ok "$name"
    else
        bad "$name:"
        tail -40 "$TMP/$name.out"
    fi
}
# The training losses of a run, one per step (tokens_per_s varies and is dropped).
losses() { grep '"split": "train"' "$1/metrics.jsonl" | sed -E 's/, "tokens_per_s": [0-9.e+-]+//'; }

TINY="configs/flipflop_tiny.json --set run.out_dir=$TMP --set run.threads=2 --set train.log_interval=1
      --set train.eval_interval=3 --set train.eval_sequences=16 --set task.eval_sequences=16
      --set train.checkpoint_interval=3"
runs "train: 6 steps of the tiny config" "$BIN/train" $TINY --set run.name=a --set train.steps=6
runs "train: 3 steps" "$BIN/train" $TINY --set run.name=r --set train.steps=3
runs "train: --resume to 6 steps" "$BIN/train" $TINY --set run.name=r --set train.steps=6 --resume
if [ -n "$(losses "$TMP/a")" ] && [ "$(losses "$TMP/a")" = "$(losses "$TMP/r")" ]; then
    ok "the resumed run has the losses of the straight one"
else bad "the resumed run's losses differ"; fi
runs "eval: every split at 128 and 256 tokens" "$BIN/eval" "$TMP/a" --lengths 128,256 --sequences 16
runs "eval: heat maps" "$BIN/eval" "$TMP/a" --heatmap "$TMP/hm" --layer 1 --head 2
refused "train: a typo in a key is refused" "train.lrr" "$BIN/train" $TINY --set train.lrr=1
refused "eval: an unknown split is refused" "valid, test, sparse, dense" "$BIN/eval" "$TMP/a" --split nope
# Error exits after the task, the model and the run are set up: nothing may leak on any of them.
refused "train: a resume with another model is refused" "model.d_model" "$BIN/train" $TINY --set run.name=a \
    --set model.d_model=32 --resume
refused "train: a run over the memory limit is refused" "needs" "$BIN/train" $TINY --set run.name=m --memory-limit 1M
refused "train: divergence stops the run" "diverged at step" "$BIN/train" $TINY --set run.name=d --set train.lr=10 \
    --set train.weight_decay=10 --set train.grad_clip=0 --set train.steps=40
refused "eval: a model override is refused" "model.d_model" "$BIN/eval" "$TMP/a" --set model.d_model=8
refused "eval: a length past the longest context is refused" "is not an integer from 1" "$BIN/eval" "$TMP/a" --lengths 2000000
refused "sample: a flip-flop run is refused" "needs a language-model run" "$BIN/sample" "$TMP/a" --prompt x

yes "the quick brown fox jumps over the lazy dog." | head -300 >"$TMP/text.txt"
cat >"$TMP/lm.json" <<EOF
{"model": {"n_layers": 2, "d_model": 32, "n_heads": 2, "block_size": 32, "dropout": 0.1},
 "pe": {"type": "cope+rel", "rel_capped": true},
 "task": {"name": "lm", "tokenizer": "word", "text_file": "$TMP/text.txt", "valid_fraction": 0.1, "test_fraction": 0.1},
 "train": {"batch_size": 4, "steps": 4, "eval_interval": 2, "log_interval": 1, "checkpoint_interval": 4},
 "run": {"name": "lm", "out_dir": "$TMP", "threads": 2}}
EOF
runs "train: a word-level language model" "$BIN/train" "$TMP/lm.json"
runs "sample: greedy" "$BIN/sample" "$TMP/lm" --prompt "the quick" --tokens 20 --temperature 0
runs "sample: top-k" "$BIN/sample" "$TMP/lm" --prompt "the" --tokens 20 --temperature 0.8 --top-k 3 --seed 7
runs "eval: the language model at 32 and 64 tokens" "$BIN/eval" "$TMP/lm" --lengths 32,64
# The benchmark's attention-alone mode (scripts/bench.sh), CoPE with separate gate keys: every hook runs.
runs "bench: attention alone" "$BUILD/bench" --attention --steps 2 --set model.n_layers=1 --set model.d_model=32 \
    --set model.n_heads=2 --set model.block_size=24 --set train.batch_size=2 --set pe.type=cope+rel \
    --set pe.sep_keys=true
if grep -Eq '^[0-9]+\.[0-9]{3} [0-9]+\.[0-9]{3}$' "$TMP/bench: attention alone.out"; then
    ok "bench: attention alone prints forward and backward ms"
else bad "bench: attention alone printed: $(cat "$TMP/bench: attention alone.out")"; fi
# Where a step's time goes (bench --products): a share of the step in products (which a loaded
# machine may round to 0%), and CoPE's own products (Q·E and its backward) above no PE's FLOPs.
for pe in none cope; do
    runs "bench: products, $pe" "$BUILD/bench" --products --steps 2 --ceiling-gflops 100 --set model.n_layers=1 \
        --set model.d_model=32 --set model.n_heads=2 --set model.block_size=24 --set train.batch_size=2 --set pe.type=$pe
done
if cat "$TMP/bench: products, none.out" "$TMP/bench: products, cope.out" | awk -F'|' '
    { share = $6; sub(/.*\(/, "", share); sub(/%.*/, "", share) }
    NF == 10 && share ~ /^[0-9]+$/ && share + 0 <= 100 && $8 + 0 > 0 { ratio[$3 ~ /cope/] = $7 + 0; n++ }
    END { exit !(n == 2 && ratio[0] >= 1 && ratio[1] > ratio[0]) }'; then
    ok "bench: products prints the share in products, and CoPE's products above no PE's FLOPs"
else bad "bench: products printed: $(cat "$TMP/bench: products, none.out" "$TMP/bench: products, cope.out")"; fi

finish smoke
