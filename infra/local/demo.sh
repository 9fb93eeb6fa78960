#!/usr/bin/env bash
# The run command (README): installs and starts the local stack, runs the
# whole flow against the Zoho sandbox, prints the leads and notes, stops.
set -euo pipefail
# shellcheck source=infra/local/session.sh
. "$(dirname "${BASH_SOURCE[0]}")/session.sh"

# The first build compiles everything (about 10 minutes on 2 cores); cargo
# shows its progress. Each function then runs as its own process, its real
# binary, behind a local Lambda Runtime API.
echo "== building the five functions (the first build takes a while)"
cargo build --locked --bins -p webhook -p oauth -p api -p record-sync -p note-append
# Logs go to stderr; RUST_LOG=info shows every step the demo takes (the
# functions log at the template's LogLevel).
RUST_LOG="${RUST_LOG:-warn}" cargo run --quiet --locked -p e2e --bin demo
