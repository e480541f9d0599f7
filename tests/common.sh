# Sourced by the shell tests after they cd to the repository root: a scratch folder removed at exit,
# the ok/bad counters, and `finish NAME`, the closing `NAME: N passed, N failed` line that
# tests/run_tests.sh reads (its status is the test's: non-zero on any failure).
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
finish() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
