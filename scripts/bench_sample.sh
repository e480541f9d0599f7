#!/bin/sh
# Generation speed of ./sample with the key/value cache against --no-cache (every token runs the
# whole window, timed over 64 new tokens), at about 256 and about 2048 tokens of context: a byte-level CoPE language model
# with a 2048-token window (4 layers of 128; its weights after one training step: speed does not
# depend on them), 1 thread. `make bench` runs it; BIN is the folder of train and sample.
BIN=${BIN:-.}
TMP=$(mktemp -d /tmp/bench_sample_XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
python3 -c "
import random
random.seed(1)
words = 'the of and to in is was for on that with as by at from his her it an are were'.split()
for _ in range(2000): print(' '.join(random.choice(words) for _ in range(10)))" >"$TMP/text.txt"
cat >"$TMP/lm.json" <<JSON
{"model": {"n_layers": 4, "d_model": 128, "n_heads": 4, "block_size": 2048, "norm": "pre", "activation": "gelu"},
 "pe": {"type": "cope", "npos": 64},
 "task": {"name": "lm", "tokenizer": "byte", "text_file": "$TMP/text.txt"},
 "train": {"batch_size": 1, "steps": 1, "eval_interval": 0, "eval_sequences": 1, "checkpoint_interval": 1},
 "run": {"name": "lm", "out_dir": "$TMP", "threads": 1}}
JSON
"$BIN/train" "$TMP/lm.json" >"$TMP/train.out" 2>&1 || { echo "bench_sample: training failed: $(tail -2 "$TMP/train.out")"; exit 1; }
prompt=$(head -c 1792 "$TMP/text.txt" | tr '\n' ' ')
speed() {  # tokens/s of one ./sample run
    "$BIN/sample" "$TMP/lm" --threads 1 --temperature 0 "$@" 2>&1 >/dev/null | sed -n 's/^sample: \([0-9.]*\) tokens\/s.*/\1/p'
}
printf "%-34s %12s %12s %8s\n" "generation, 1 thread" "cached" "--no-cache" "ratio"
for ctx in 256 2048; do
    if [ $ctx = 256 ]; then set -- --prompt "" --tokens 256; else set -- --prompt "$prompt" --tokens 256; fi
    c=$(speed "$@")
    n=$(speed "$@" --no-cache --tokens 64)  # 64 new tokens: the same rate, a quarter of the wait
    printf "%-34s %9s t/s %9s t/s %7sx\n" "$([ $ctx = 256 ] && echo "context 1..256" || echo "context 1793..2048 (prompt 1792)")" "$c" "$n" \
        "$(python3 -c "print(f'{$c / $n:.1f}')" 2>/dev/null)"
done
