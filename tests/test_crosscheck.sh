#!/bin/sh
# End-to-end cross-check of the model against an independent PyTorch implementation written from the
# official semantics (scripts/torch_reference.py): for every configuration below, the C model (double
# build) dumps one forward and backward (tests/tool_crosscheck_dump.c) and scripts/torch_crosscheck.py
# compares logits, loss and every parameter gradient in float64. One pass/fail per configuration;
# prints `crosscheck: N passed, N failed`.
#
# Model: 2 layers, d 16, 2 heads, d_ff 24, T = block_size = 8, V 11, batch 3 with loss-masked and
# padded positions (the tool's defaults). Needs torch for /usr/bin/python3 (Debian's python3-torch).
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
TOOL=$BUILD/tools/tool_crosscheck_dump
PY=${CROSSCHECK_PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

if [ ! -x "$TOOL" ]; then
    echo "FAIL $TOOL is not built (make BUILD=$BUILD $TOOL)"
    echo "crosscheck: 0 passed, 1 failed"
    exit 1
fi
if ! "$PY" -c "import torch" >"$TMP/torch.err" 2>&1; then
    echo "FAIL $PY cannot import torch: $(tail -1 "$TMP/torch.err")"
    echo "     The cross-check needs PyTorch for $PY: apt-get install python3-torch (Debian's torch is"
    echo "     importable only from /usr/bin/python3; CROSSCHECK_PYTHON=... selects another interpreter)."
    echo "crosscheck: 0 passed, 1 failed"
    exit 1
fi

# The reference's own position encodings against the pure-Python CoPE of docs/cope.md §7
# and a few identities, before it is trusted as the oracle.
if "$PY" scripts/torch_reference.py >"$TMP/selftest.out" 2>&1; then
    passed=$((passed + 1))
    echo "ok   reference selftest: $(tail -1 "$TMP/selftest.out")"
else
    failed=$((failed + 1))
    cat "$TMP/selftest.out"
    echo "FAIL reference selftest"
fi

# label, then --set overrides. Labels are file names: no spaces.
LABELS=""
dump() {
    label=$1
    shift
    sets=""
    for kv in "$@"; do sets="$sets --set $kv"; done
    # shellcheck disable=SC2086
    if "$TOOL" "$TMP/$label.bin" $sets >"$TMP/$label.out" 2>&1; then
        LABELS="$LABELS $label"
    else
        failed=$((failed + 1))
        echo "FAIL $label: the dump tool failed: $(tail -2 "$TMP/$label.out")"
    fi
}

for norm in post pre; do
    for act in relu gelu; do
        n="$norm-$act"
        common="model.norm=$norm model.activation=$act"
        # shellcheck disable=SC2086
        {
            dump "$n-none" $common pe.type=none
            dump "$n-abs-learned" $common pe.type=abs pe.abs_kind=learned
            dump "$n-abs-sinusoidal" $common pe.type=abs pe.abs_kind=sinusoidal
            dump "$n-rel" $common pe.type=rel
            dump "$n-rel-capped5" $common pe.type=rel pe.rel_max_distance=5 pe.rel_beyond=cap
            dump "$n-rel-zero5" $common pe.type=rel pe.rel_max_distance=5 pe.rel_beyond=zero
            dump "$n-rel-oldname-capped5" $common pe.type=rel pe.rel_max_distance=5 pe.rel_capped=true
            dump "$n-rope" $common pe.type=rope
            dump "$n-cope" $common pe.type=cope
            dump "$n-cope-nodiv" $common pe.type=cope pe.nodiv=true
            dump "$n-cope-npos3" $common pe.type=cope pe.npos=3
            dump "$n-cope-sepkeys" $common pe.type=cope pe.sep_keys=true
            dump "$n-cope-shared" $common pe.type=cope pe.shared_table=true
            dump "$n-cope+rel-every2" $common pe.type=cope+rel pe.every_k_layers=2
            dump "$n-cope+rope-rotated" $common pe.type=cope+rope pe.rope_gates=rotated
            dump "$n-cope+rope-unrotated" $common pe.type=cope+rope pe.rope_gates=unrotated
            dump "$n-abs+rel" $common pe.type=abs+rel
        }
    done
done
# once each: untied output; a relative table longer than the context; sinusoids with relative PE;
# every option at once on four layers (CoPE on layers 1 and 3, sharing layer 1's table);
# separate gate keys under RoPE
dump pre-gelu-cope-untied model.norm=pre model.activation=gelu pe.type=cope model.tie_embeddings=false
dump post-relu-abs-untied model.norm=post pe.type=abs model.tie_embeddings=false
dump post-relu-rel-n11 pe.type=rel pe.rel_max_distance=11
dump pre-gelu-abssin+rel model.norm=pre model.activation=gelu pe.type=abs+rel pe.abs_kind=sinusoidal
dump post-gelu-cope+rel-all model.activation=gelu model.n_layers=4 pe.type=cope+rel pe.every_k_layers=2 \
    pe.shared_table=true pe.npos=4 pe.nodiv=true pe.sep_keys=true pe.rel_max_distance=6 pe.rel_capped=true
dump pre-relu-cope+rope-sepkeys-rotated model.norm=pre pe.type=cope+rope pe.sep_keys=true
dump pre-relu-cope+rope-sepkeys-unrotated model.norm=pre pe.type=cope+rope pe.sep_keys=true pe.rope_gates=unrotated

files=""
for l in $LABELS; do files="$files $TMP/$l.bin"; done
rc=0
: >"$TMP/check.out"
if [ -n "$files" ]; then
    # one process for all dumps: torch imports once
    # shellcheck disable=SC2086
    "$PY" scripts/torch_crosscheck.py --quiet $files >"$TMP/check.out" 2>&1
    rc=$?
fi
cat "$TMP/check.out"
for l in $LABELS; do
    result=$(awk -F': ' -v l="$l" '$1 == l { print $2 }' "$TMP/check.out")
    if [ "$result" = ok ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        [ -n "$result" ] || echo "FAIL $l: no result from torch_crosscheck.py (exit $rc)"
    fi
done
echo "crosscheck: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
