#!/usr/bin/env bash
# Runs the end-to-end test binaries (package `e2e`) several at a time against
# the running local stack: each test starts its own isolated system (its own
# table, queues, secrets and function processes), and the tests spend most
# of their time waiting on queues and child processes rather than on the
# CPU, so running them side by side shortens the test command without
# changing what they check. Each binary's output is printed whole, in name
# order, once it is done; the exit status is non-zero if any binary failed.
#
# E2E_JOBS: binaries at once (default 3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
jobs=${E2E_JOBS:-3}
out="$root/.local/logs/e2e"
rm -rf "$out"
mkdir -p "$out"

# The test binaries cargo builds, as `kind-name path` lines (a binary and a
# test may share a name: `soak`).
cargo test --locked -p e2e --tests --no-run --message-format=json-render-diagnostics |
    python3 "$root/infra/local/cargo-executables.py" --tests | sort >"$out/binaries"

# Each binary's output into its own log (cargo test runs them from the
# package's directory; so does this).
run_one() {
    local name=$1 binary=$2 started=$SECONDS status=0
    (cd "$root/tests" && "$binary") >"$out/$name.log" 2>&1 || status=$?
    echo "$status $((SECONDS - started))" >"$out/$name.status"
}
export -f run_one
export root out
xargs -P "$jobs" -L 1 bash -c 'run_one "$@"' _ <"$out/binaries" || true

failed=()
while read -r name _; do
    echo "     Running $name"
    cat "$out/$name.log"
    read -r status seconds 2>/dev/null <"$out/$name.status" || status=1 seconds=?
    echo "     ($name: exit $status, ${seconds} s)"
    [[ $status == 0 ]] || failed+=("$name")
done <"$out/binaries"
if ((${#failed[@]})); then
    echo "e2e: failed: ${failed[*]}"
    exit 1
fi
