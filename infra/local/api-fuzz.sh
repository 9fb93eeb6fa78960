#!/usr/bin/env bash
# The API fuzz (README "API contract"; the benchmark command runs it):
# installs schemathesis (infra/local/fuzz-requirements.txt, into
# .local/fuzz-venv), starts the local stack, and runs the api-fuzz binary
# (tests/src/bin/api-fuzz.rs): every function on one port against the Zoho,
# Pipedrive and Graph sandboxes, a workspace and tokens made through the
# API, then schemathesis with every check over infra/openapi.yaml. Prints
#   api fuzz: N requests, X server errors, Y schema violations
# and exits non-zero unless X and Y are 0 (schemathesis's report of its
# other checks comes before that line).
# API_FUZZ_EXAMPLES (default 30): examples per operation and phase.
set -euo pipefail
# shellcheck source=infra/local/session.sh
. "$(dirname "${BASH_SOURCE[0]}")/session.sh"

venv="$root/.local/fuzz-venv"
requirements="$root/infra/local/fuzz-requirements.txt"
stamp="$venv/.installed"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(<"$stamp")" != "$want" ]]; then
    echo "== installing schemathesis into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    printf '%s\n' "$want" >"$stamp"
fi

# LOCAL_STACK_BIN_DIR set (the benchmark command): the functions built there
# are fuzzed, and only the driver is built here.
if [[ -z "${LOCAL_STACK_BIN_DIR:-}" ]]; then
    echo "== building the five functions"
    cargo build --locked --bins -p webhook -p oauth -p api -p record-sync -p note-append
fi
echo "== building the fuzz driver"
cargo build --locked -p e2e --bin api-fuzz
log="$root/.local/logs/api-fuzz.log"
mkdir -p "$(dirname "$log")"
echo "== fuzzing (the functions' logs: $log)"
SCHEMATHESIS="$venv/bin/schemathesis" RUST_LOG="${RUST_LOG:-warn}" \
    "${CARGO_TARGET_DIR:-$root/target}/debug/api-fuzz" 2>"$log"
