#!/bin/sh
# Downloads the public text corpora of the language-modelling experiments into data/, laid out for
# the lm task (task.data_dir = the folder; train.txt, valid.txt, test.txt):
#
#   scripts/fetch_data.sh [wikitext-103|wikitext-2|tinyshakespeare|gpt2|all] [DEST]     (DEST: data)
#
#   wikitext-103     DEST/wikitext-103/{train,valid,test}.txt   raw (untokenised) WikiText-103 v1,
#                    Merity et al. 2016, the CoPE paper's LM data (≈540 MB of text, 180 MB zip)
#   wikitext-2       DEST/wikitext-2/{train,valid,test}.txt     raw WikiText-2 v1 (≈13 MB): the
#                    same articles' style at 1/50 the size, for quick runs
#   tinyshakespeare  DEST/tinyshakespeare/input.txt              karpathy/char-rnn (1.1 MB), one
#                    file: use task.text_file with task.valid_fraction / task.test_fraction
#   gpt2             DEST/gpt2/{encoder.json,vocab.bpe}          GPT-2's tokenizer (task.tokenizer
#                    "gpt2", task.bpe_dir): OpenAI's files, from its public blob store; offline,
#                    the gzip copies the tests use (tests/data/gpt2/, the same files) are unpacked.
#                    Either way their SHA-256 is checked.
#
# Sources: the WikiText zips from their original address (Salesforce Research's S3 bucket); if it
# is gone, the same files are in the Hugging Face dataset Salesforce/wikitext (as parquet), and
# WIKITEXT_BASE can point at a mirror holding wikitext-103-raw-v1.zip / wikitext-2-raw-v1.zip.
# The raw files wiki.{train,valid,test}.raw are renamed to {train,valid,test}.txt; nothing else
# changes (no tokenisation, no <eos> insertion: the word tokenizer adds <eos> per line itself).
# Needs curl or wget, and unzip. Never run by the tests (they must pass offline).
#
# The other tasks need no download: flip-flop, counting and selective copy are generated (see
# data/README.md for loading the public flip-flop release or the official counting JSONL), and
# the code corpus comes from scripts/build_code_corpus.py.
set -eu

what=${1:-all}
dest=${2:-data}
WIKITEXT_BASE=${WIKITEXT_BASE:-https://s3.amazonaws.com/research.metamind.io/wikitext}
SHAKESPEARE_URL=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt

die() { echo "fetch_data: $*" >&2; exit 1; }

download() {  # url file
    echo "fetch_data: $1"
    if command -v curl >/dev/null 2>&1; then
        curl -fL --retry 3 -o "$2.part" "$1" || die "download failed: $1 (no network? see the sources above for mirrors)"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2.part" "$1" || die "download failed: $1 (no network? see the sources above for mirrors)"
    else
        die "needs curl or wget"
    fi
    mv "$2.part" "$2"
}

wikitext() {  # name (wikitext-103 | wikitext-2)
    name=$1
    out=$dest/$name
    if [ -s "$out/train.txt" ] && [ -s "$out/valid.txt" ] && [ -s "$out/test.txt" ]; then
        echo "fetch_data: $out already there"
        return
    fi
    command -v unzip >/dev/null 2>&1 || die "needs unzip"
    mkdir -p "$out"
    zip=$out/$name-raw-v1.zip
    [ -s "$zip" ] || download "$WIKITEXT_BASE/$name-raw-v1.zip" "$zip"
    tmp=$out/unzip.tmp
    rm -rf "$tmp"
    unzip -q "$zip" -d "$tmp" || die "$zip: not a valid zip (delete it and retry)"
    for split in train valid test; do
        src=$(find "$tmp" -name "wiki.$split.raw" | head -n 1)
        [ -n "$src" ] || die "$zip: no wiki.$split.raw inside"
        mv "$src" "$out/$split.txt"
    done
    rm -rf "$tmp" "$zip"
    wc -c "$out"/train.txt "$out"/valid.txt "$out"/test.txt
}

GPT2_URL=${GPT2_URL:-https://openaipublic.blob.core.windows.net/gpt-2/models/124M}
GPT2_SHA256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783  encoder.json
1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  vocab.bpe"

gpt2() {
    out=$dest/gpt2
    here=$(cd "$(dirname "$0")/.." && pwd)
    mkdir -p "$out"
    for f in encoder.json vocab.bpe; do
        [ -s "$out/$f" ] && continue
        if ! (download "$GPT2_URL/$f" "$out/$f") 2>/dev/null; then
            rm -f "$out/$f.part"
            echo "fetch_data: unpacking the repository's copy of $f (tests/data/gpt2/)"
            gunzip -c "$here/tests/data/gpt2/$f.gz" >"$out/$f.part" && mv "$out/$f.part" "$out/$f" || die "cannot unpack $f"
        fi
    done
    if command -v sha256sum >/dev/null 2>&1; then
        (cd "$out" && echo "$GPT2_SHA256" | sha256sum -c --quiet) || die "$out: the files differ from GPT-2's (delete them and retry)"
    fi
    wc -c "$out/encoder.json" "$out/vocab.bpe"
}

shakespeare() {
    out=$dest/tinyshakespeare
    if [ -s "$out/input.txt" ]; then
        echo "fetch_data: $out/input.txt already there"
        return
    fi
    mkdir -p "$out"
    download "$SHAKESPEARE_URL" "$out/input.txt"
    wc -c "$out/input.txt"
}

case $what in
    wikitext-103) wikitext wikitext-103 ;;
    wikitext-2) wikitext wikitext-2 ;;
    tinyshakespeare) shakespeare ;;
    gpt2) gpt2 ;;
    all) gpt2; wikitext wikitext-2; shakespeare; wikitext wikitext-103 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown corpus \"$what\" (wikitext-103, wikitext-2, tinyshakespeare, gpt2 or all)" ;;
esac
