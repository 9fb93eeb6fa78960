#!/usr/bin/env bash
# The test command (README, CI): installs and starts the local stack
# (DynamoDB Local, moto), runs every check against it, and stops it again.
set -euo pipefail
# shellcheck source=infra/local/session.sh
. "$(dirname "${BASH_SOURCE[0]}")/session.sh"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cfn-lint infra/template.yaml"
bash "$stack" lint
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the five functions: the local stack runs their binaries)"
cargo build --locked --bins -p webhook -p oauth -p api -p record-sync -p note-append
echo "== cargo test (unit, sandbox and end-to-end tests)"
log="$root/.local/logs/cargo-test.log"
mkdir -p "$(dirname "$log")"
set +e
# --no-fail-fast: one failing test binary does not hide the others' results.
(
    unit=0 e2e=0
    cargo test --workspace --all-targets --locked --no-fail-fast --exclude e2e || unit=$?
    bash "$root/infra/local/e2e-tests.sh" || e2e=$?
    exit $((unit != 0 ? unit : e2e))
) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
bash "$stack" stop
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
