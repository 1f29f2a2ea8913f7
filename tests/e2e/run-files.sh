#!/bin/sh
# Runs inside the loopback-only namespace (see run.sh): each test file on its own. A file that
# fails is run once more; if it then passes it is reported as FLAKY, so a flake on this shared
# machine is seen without failing the run, while a real failure fails twice and fails the run.
set -u
passed=0
failed=0
flaky=""
run() { # run FILE [REPORT_SUFFIX]: the retry keeps the first run's report beside its own
    name=$(basename "$1" .test.mjs)$2
    node --test --test-concurrency=1 \
        --test-reporter=spec --test-reporter-destination="out/report-$name.txt" \
        --test-reporter=tap --test-reporter-destination=stdout "$1"
}
for f in tests/*.test.mjs; do
    if run "$f" ""; then
        passed=$((passed + 1))
    else
        echo "# $f failed; running it once more"
        if run "$f" .retry; then
            passed=$((passed + 1))
            flaky="$flaky $f"
        else
            failed=$((failed + 1))
        fi
    fi
done
[ -n "$flaky" ] && echo "# FLAKY (failed once, passed on the second run):$flaky"
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
