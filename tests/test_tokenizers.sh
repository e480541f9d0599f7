#!/bin/sh
# End-to-end tests of the BPE tokenizers (docs/tokenizers.md) in the lm task: a tiny language model
# trains, evaluates and samples with a trained BPE and with GPT-2's; the second run reads the
# tokenizer and the token ids from task.cache_dir instead of making them again, and is identical;
# a corrupt cache file is rebuilt with a message. Then scripts/plot.py lengths: the task's default
# metric, and points keyed by their --set settings. Prints `tokenizers: N passed, N failed`.
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:-.}  # the folder of train, eval, sample (tests/run_tests.sh)
. tests/common.sh
PY=python3

cat README.md docs/*.md >"$TMP/text.txt"
mkdir -p "$TMP/gpt2"
gunzip -c tests/data/gpt2/encoder.json.gz >"$TMP/gpt2/encoder.json"
gunzip -c tests/data/gpt2/vocab.bpe.gz >"$TMP/gpt2/vocab.bpe"
LM="configs/cpu/wikitext_cope.json --set run.out_dir=$TMP --set run.threads=1 --set task.text_file=$TMP/text.txt
    --set model.n_layers=1 --set model.d_model=32 --set model.block_size=32 --set train.steps=6 --set train.eval_interval=3
    --set train.eval_sequences=4 --set train.checkpoint_interval=3 --set task.cache_dir=$TMP/cache"

# A trained BPE: made once, then read back; both runs are the same run.
"$BIN/train" $LM --set task.tokenizer=bpe --set task.vocab_size=600 --set run.name=bpe1 >"$TMP/bpe1.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "trained a BPE of 600 tokens" "$TMP/bpe1.out" && grep -q '"ppl"' "$TMP/bpe1/metrics.jsonl" &&
    ls "$TMP/cache" | grep -q 'train.bpe600.merges$' && [ "$(ls "$TMP/cache" | grep -c 'bpe600.tokens$')" -eq 3 ]; then
    ok "a bpe run trains its tokenizer (600 ids) and caches it and the three splits' ids"
else bad "bpe run (exit $rc): $(tail -5 "$TMP/bpe1.out")"; fi
"$BIN/train" $LM --set task.tokenizer=bpe --set task.vocab_size=600 --set run.name=bpe2 >"$TMP/bpe2.out" 2>&1
if ! grep -q "trained a BPE\|tokens (.* bytes per token)" "$TMP/bpe2.out" &&
    [ "$(grep -v elapsed "$TMP/bpe1/metrics.jsonl" | sed 's/"tokens_per_s": [0-9.e+]*//')" = \
      "$(grep -v elapsed "$TMP/bpe2/metrics.jsonl" | sed 's/"tokens_per_s": [0-9.e+]*//')" ]; then
    ok "a second run reads the tokenizer and ids from the cache and logs the same metrics"
else bad "second bpe run: $(grep '^lm:' "$TMP/bpe2.out")"; fi

# A corrupt cache file: rebuilt, with a message naming it.
f=$(ls "$TMP/cache"/*valid.bpe600.tokens)
printf 'garbage' | dd of="$f" bs=1 seek=70 conv=notrunc 2>/dev/null
"$BIN/eval" "$TMP/bpe1" --set run.threads=1 >"$TMP/e.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "valid.bpe600.tokens: corrupt (the CRC of its ids does not match); tokenising" "$TMP/e.out" &&
    grep -q "bits/byte" "$TMP/e.out" && grep -q '"bits_per_byte"' "$TMP/bpe1/eval.jsonl"; then
    ok "./eval rebuilds a corrupt token cache (with a message) and reports per-token and per-byte numbers"
else bad "eval with a corrupt cache (exit $rc): $(tail -4 "$TMP/e.out")"; fi
"$BIN/eval" "$TMP/bpe1" --set run.threads=1 >"$TMP/e2.out" 2>&1
if ! grep -q "^lm:" "$TMP/e2.out" && grep -q "^valid " "$TMP/e2.out" &&
    [ "$(grep "^valid \|^test " "$TMP/e.out")" = "$(grep "^valid \|^test " "$TMP/e2.out")" ]; then
    ok "the rebuilt cache is read back and gives the same numbers"
else bad "eval after the rebuild: $(head -3 "$TMP/e2.out")"; fi

"$BIN/sample" "$TMP/bpe1" --prompt "The model" --tokens 20 --temperature 0 --threads 1 >"$TMP/s.out" 2>"$TMP/s.err"
rc=$?
if [ $rc -eq 0 ] && grep -q "^The model" "$TMP/s.out" && grep -q "sample: 20 tokens, .* bits per byte" "$TMP/s.err"; then
    ok "./sample encodes the prompt with the run's BPE and reports per-token and per-byte numbers"
else bad "sample (exit $rc): $(cat "$TMP/s.err")"; fi

# GPT-2's tokenizer.
# The paper-scale text config (the CPU one trains its own BPE), shrunk.
GPT2="configs/wikitext_cope.json --set task.data_dir= --set task.text_file=$TMP/text.txt --set task.bpe_dir=$TMP/gpt2
      --set run.out_dir=$TMP --set run.threads=1 --set model.n_layers=1 --set model.d_model=32 --set model.n_heads=2
      --set model.block_size=32 --set train.batch_size=4 --set train.grad_accum=1 --set train.eval_sequences=4
      --set task.cache_dir=$TMP/cache"
"$BIN/train" $GPT2 --set train.steps=3 --set run.name=gpt2 >"$TMP/g.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "gpt2 tokens" "$TMP/g.out" && grep -q "model: .* parameters" "$TMP/g.out" &&
    "$BIN/sample" "$TMP/gpt2" --prompt "Hello" --tokens 5 --threads 1 >"$TMP/gs.out" 2>/dev/null && grep -q "^Hello" "$TMP/gs.out"; then
    ok "a gpt2 run trains, and samples from a prompt"
else bad "gpt2 run (exit $rc): $(tail -5 "$TMP/g.out")"; fi
"$BIN/train" $LM --set task.bpe_dir="$TMP/gpt2" --set run.name=bad >"$TMP/bad.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "task.bpe_dir: .* applies to the gpt2 tokenizer only" "$TMP/bad.out"; then
    ok "task.bpe_dir with the bpe tokenizer is refused"
else bad "bpe_dir with bpe (exit $rc): $(tail -2 "$TMP/bad.out")"; fi

# plot.py lengths: a flip-flop run plots its error by default, and an evaluation with other --set
# settings is a point of its own, not a replacement.
mkdir -p "$TMP/ff"
echo '{"task": {"name": "flipflop"}}' >"$TMP/ff/config.json"
cat >"$TMP/ff/eval.jsonl" <<'LINES'
{"step": 10, "split": "valid", "length": 100, "sequences": 8, "loss": 0.1, "error": 1.5, "seq_error": 3}
{"step": 10, "split": "valid", "length": 200, "sequences": 8, "loss": 0.2, "error": 2.5, "seq_error": 4}
{"step": 10, "split": "valid", "length": 200, "sequences": 8, "loss": 0.9, "error": 40, "seq_error": 50, "set": ["task.p_sparse=0.9"]}
LINES
got=$($PY - "$TMP/ff" <<'PY'
import sys
sys.path.insert(0, "scripts")
import plot
seen = []
plot.svg_plot = lambda series, title, xlabel, ylabel, *a, **k: seen.append((series, ylabel))
plot.lengths(plot.parser().parse_args(["lengths", sys.argv[1], "-o", "x.svg"]))
plot.lengths(plot.parser().parse_args(["lengths", sys.argv[1], "-o", "x.svg", "--set", "task.p_sparse=0.9",
                                       "--set", "run.threads=1"]))
print(seen)
PY
)
if [ "$got" = "[([('ff', [(100, 1.5), (200, 2.5)])], 'error (%)'), ([('ff', [(200, 40)])], 'error (%)')]" ]; then
    ok "plot.py lengths: flip-flop's default metric is error, and points are keyed by their --set settings"
else bad "plot.py lengths: $got"; fi

finish tokenizers
