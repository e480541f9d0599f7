#!/bin/sh
# Each task trains from its shipped configs (shrunk by --set to a few seconds) and its metric lands
# in metrics.jsonl. Prints `tasks_train: N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-.}  # the folder of train, eval, sample (tests/run_tests.sh)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
SMALL="--set run.out_dir=$TMP --set run.threads=2 --set model.n_layers=1 --set model.d_model=32 --set model.n_heads=2
       --set train.steps=4 --set train.eval_interval=2 --set train.log_interval=1 --set train.eval_sequences=16"
mkdir -p "$TMP/text"
for f in train valid test; do
    yes "the quick brown fox jumps over the lazy dog, said the $f file." | head -400 >"$TMP/text/$f.txt"
done

# check NAME CONFIG FIELD [extra --set ...]: trains, then expects FIELD in a valid-split metrics line.
check() {
    name=$1 config=$2 field=$3
    shift 3
    if "$BIN/train" "$config" $SMALL --set run.name="$name" "$@" >"$TMP/$name.out" 2>&1 &&
        grep '"split": "valid"' "$TMP/$name/metrics.jsonl" | grep -q "\"$field\""; then
        passed=$((passed + 1))
        echo "ok   $name: $(grep '"split": "valid"' "$TMP/$name/metrics.jsonl" | tail -1)"
    else
        failed=$((failed + 1))
        echo "FAIL $name: $(tail -3 "$TMP/$name.out")"
    fi
}
check flipflop configs/flipflop_cope.json error --set task.length=64 --set model.block_size=64
check counting configs/counting_3var_cope.json error --set task.n_train=64 --set task.n_valid=16 --set task.n_test=16 \
    --set train.batch_size=8 --set task.max_steps=40 --set model.block_size=128
check selcopy configs/selcopy_rope.json error --set task.n_blanks=32 --set task.dense_blanks=16 \
    --set task.sparse_blanks=64 --set model.block_size=128
# the text configs use GPT-2's tokenizer: its files from the repository's copies; the code configs
# train a BPE (cached in the scratch folder)
mkdir -p "$TMP/gpt2"
for f in encoder.json vocab.bpe; do gunzip -c "tests/data/gpt2/$f.gz" >"$TMP/gpt2/$f"; done
check lm_text configs/wikitext_cope_rel.json ppl --set task.data_dir="$TMP/text" --set model.block_size=32 \
    --set pe.npos=16 --set train.batch_size=4 --set train.grad_accum=1 --set task.bpe_dir="$TMP/gpt2"
check lm_code configs/code_cope_rope.json ppl --set task.data_dir="$TMP/text" --set model.block_size=32 \
    --set pe.npos=16 --set train.batch_size=4 --set task.cache_dir="$TMP/cache"

echo "tasks_train: $passed passed, $failed failed"
[ $failed -eq 0 ]
