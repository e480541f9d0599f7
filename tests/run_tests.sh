#!/bin/sh
# sh tests/run_tests.sh [TEST...]: runs the given tests (test binaries and shell tests), by default
# every test binary ($BUILD/tests/*) and every shell test (tests/test_*.sh), then prints the total.
# Each one ends with a line `NAME: N passed, N failed`; a test that crashes or prints no such line
# counts as one failure. BUILD is the build folder (default build), BIN the folder of the programs
# the shell tests run (default ., the repository root); both are passed on to the tests.
BUILD=${BUILD:-build}
BIN=${BIN:-.}
export BUILD BIN
[ $# -gt 0 ] || set -- "$BUILD"/tests/* tests/test_*.sh
passed=0
failed=0
for t in "$@"; do
    case "$t" in *.d|*.o) continue ;; esac
    if [ ! -f "$t" ]; then
        echo "  $t: no such test: counted as 1 failure"
        failed=$((failed + 1))
        continue
    fi
    echo "== $t"
    log=$(mktemp)
    start=$(date +%s)
    if [ "${t%.sh}" != "$t" ]; then sh "$t" >"$log" 2>&1; else "$t" >"$log" 2>&1; fi
    rc=$?
    cat "$log"
    echo "   ($t: $(($(date +%s) - start)) s)"
    line=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$line" ]; then
        echo "  $t: no summary line (exit $rc): counted as 1 failure"
        failed=$((failed + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "  $t: exit $rc with no failure reported: counted as 1 failure"; fi
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
