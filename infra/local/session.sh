# Sourced by test.sh and demo.sh: installs and starts the local stack,
# loads its environment, and stops it when the calling script exits.
# shellcheck shell=bash
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
stack="$root/infra/local/stack.sh"
bash "$stack" install
bash "$stack" start
# Quiet: test.sh stops the stack itself before its summary line.
trap 'bash "$stack" stop >/dev/null 2>&1' EXIT
# shellcheck source=/dev/null
. "$root/.local/stack.env"
