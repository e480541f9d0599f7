#!/bin/sh
# Rewrites README.md's config table from `./train --keys` (the schema is the one source of truth;
# tests/test_train.sh fails when README is out of date).
set -e
cd "$(dirname "$0")/.."
./train --keys > README.keys.tmp
awk 'BEGIN { skip = 0 }
     /^<!-- keys:/ { print; while ((getline line < "README.keys.tmp") > 0) print line; skip = 1; next }
     /^<!-- \/keys -->/ { skip = 0 }
     !skip { print }' README.md > README.md.tmp
mv README.md.tmp README.md
rm -f README.keys.tmp
