#!/usr/bin/env bash
# The run command (README): installs and starts the local stack, runs the
# whole flow against the Zoho sandbox, prints the leads and notes, stops.
set -euo pipefail
# shellcheck source=infra/local/session.sh
. "$(dirname "${BASH_SOURCE[0]}")/session.sh"

# Logs go to stderr; RUST_LOG=info shows every step the functions take.
RUST_LOG="${RUST_LOG:-warn}" cargo run --quiet --locked -p e2e --bin demo
