#!/usr/bin/env bash
# The benchmark command (README, "Benchmarks"): installs and starts the local
# stack, builds the five functions and the hello-worlds with the release
# profile, and prints one Markdown table of every figure with the date, the
# machine and the profile. Stops the stack when done.
#
# Each figure comes from a step whose stdout rows `| figure | value | how |`
# are collected into the table (anything else a step prints goes to its log in
# .local/bench/); to add figures, add a step that prints such rows.
#
# Tunables (environment): BENCH_INIT_ROUNDS (starts per binary, default 21),
# BENCH_CRITERION_SECS (measurement time per criterion benchmark, default 3),
# BENCH_SOAK_CHATS and BENCH_SOAK_MESSAGES (the soak's size, default 100 × 10:
# the soak command's own default, 100 × 20, takes twice as long).
set -euo pipefail
# shellcheck source=infra/local/session.sh
. "$(dirname "${BASH_SOURCE[0]}")/session.sh"

target="${CARGO_TARGET_DIR:-$root/target}"
out="$root/.local/bench"
mkdir -p "$out"
rows="$out/rows.md"
: >"$rows"
functions=(webhook oauth api record-sync note-append)
started=$SECONDS

# Runs a step, its rows into the table, the rest into .local/bench/<name>.log.
step() {
    local name=$1
    shift
    echo "== $name" >&2
    local log="$out/$name.log"
    if ! "$@" >"$log.out" 2>"$log"; then
        echo "bench: step $name failed; see $log" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    grep '^| ' "$log.out" >>"$rows" || true
    grep -v '^| ' "$log.out" >>"$log" || true
    rm -f "$log.out"
}

# Each build makes everything of its set at once, so that no crate is
# compiled twice: the functions, the hello-worlds and the handlers'
# criterion benchmark (its dev-dependencies add nothing the functions link);
# the hostile-input run on its own (`shared`'s dev-dependencies bring the
# sandboxes and AWS-LC, which must not reach the measured functions; 100,000
# cases take over ten minutes in the dev profile, so release too); and the
# dev-profile harness (speed, soak, API fuzz), which measures through the
# release functions.
build() {
    cargo build --release --locked --message-format=json-render-diagnostics \
        -p webhook -p oauth -p api -p record-sync -p note-append -p bench --bins --benches |
        executables >"$out/release-executables"
    cargo build --release --locked --message-format=json-render-diagnostics \
        -p shared --bench hostile_input |
        executables >>"$out/release-executables"
    cargo build --locked --message-format=json-render-diagnostics \
        -p e2e --bin bench-speed --bin soak --bin api-fuzz |
        executables >"$out/dev-executables"
}

# `name path` of each executable a build made (from cargo's JSON messages).
executables() {
    python3 "$root/infra/local/cargo-executables.py"
}

# The executable a build made for target `name`.
executable() {
    awk -v name="$2" '$1 == name { print $2 }' "$out/$1-executables" | tail -n 1
}

# Each function's binary and its zip as Lambda gets it (`bootstrap` in a zip,
# deflated), built on this host with the release profile.
sizes() {
    local name binary
    for name in "${functions[@]}"; do
        binary="$target/release/$name"
        python3 - "$name" "$binary" <<'EOF'
import io, os, sys, zipfile
name, binary = sys.argv[1:]
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(binary, "bootstrap")
mb = lambda n: f"{n / 1e6:.1f} MB"
print(f"| size: {name} | {mb(len(buffer.getvalue()))} zipped ({mb(os.path.getsize(binary))} binary) "
      f"| release profile, x86_64 host build (not the arm64 cross-build), bootstrap deflated |")
EOF
    done
}

# Handler CPU (bench/benches/handlers.rs): µs per message from criterion's
# median per delivery.
handler_cpu() {
    local secs=${BENCH_CRITERION_SECS:-3}
    # Run from the bench crate's directory, as `cargo bench` would.
    (cd "$root/bench" && CARGO_TARGET_DIR="$target" "$(executable release handlers)" --bench \
        --warm-up-time 1 --measurement-time "$secs") >&2
    python3 - "$target/criterion" <<'EOF'
import json, os, sys
root = sys.argv[1]
how = {
    "webhook": "signature + parse + stored item and queue body (in-memory store and queue), per message",
    "note-append": "each line + the note rendered for Zoho and Pipedrive + its size, per message",
}
for group in ("webhook", "note-append"):
    for n in (1, 10):
        with open(os.path.join(root, group, str(n), "new", "estimates.json")) as f:
            ns = json.load(f)["median"]["point_estimate"]
        print(f"| handler CPU: {group}, {n}-message delivery | {ns / n / 1000:.2f} µs per message "
              f"| criterion median; {how[group]} |")
EOF
}

# Load: the soak (`tests/src/bin/soak.rs`: N chats × M messages through the
# local stack with faults injected, checked from the sandboxes' state) on the
# release functions, driven by the dev-profile harness. `--table` prints its
# figures as rows.
soak_args=(--chats "${BENCH_SOAK_CHATS:-100}" --messages "${BENCH_SOAK_MESSAGES:-10}")
soak() {
    LOCAL_STACK_BIN_DIR="$target/release" "$target/debug/soak" "${soak_args[@]}" --table
}

# Hostile input (shared/benches/hostile_input.rs, `--bench`): 100,000 generated cases
# over the webhook path, phone normaliser, note renderer, OAuth callback and
# the API's JSON bodies; its total line becomes two rows.
hostile_input() {
    "$(executable release hostile_input)" --bench | tee /dev/stderr |
        python3 -c '
import sys
lines = sys.stdin.read().splitlines()
head = next(l for l in lines if l.startswith("hostile input:"))
total = next(l for l in lines if l.startswith("total")).split()
cases, panics, unsigned, unclear, other, secs = total[1:7]
how = "shared/benches/hostile_input.rs --bench, release profile (" + head.split(":", 1)[1].strip() + ")"
print(f"| hostile input: generated cases | {int(cases):,} in {secs} | {how} |")
print(f"| hostile input: panics / stored without a valid signature / refusals not a clear 4xx / other broken properties | {panics} / {unsigned} / {unclear} / {other} | {how} |")
'
}

# The API fuzz (infra/local/api-fuzz.sh: schemathesis over infra/openapi.yaml
# against the local stack); its closing line becomes a row. Last: it stops
# the local stack when done.
api_fuzz() {
    LOCAL_STACK_BIN_DIR="$target/release" bash "$root/infra/local/api-fuzz.sh" | tee /dev/stderr | python3 -c '
import sys
for line in sys.stdin:
    if line.startswith("api fuzz:"):
        print("| api fuzz (schemathesis, every check) | " + line.split(":", 1)[1].strip()
              + " | infra/local/api-fuzz.sh: infra/openapi.yaml against the local stack |")
'
}

echo "== cargo build --release (the five functions, the hello-worlds) and the harness" >&2
build
step sizes sizes
step handler-cpu handler_cpu
step speed env LOCAL_STACK_BIN_DIR="$target/release" "$target/debug/bench-speed"
step soak soak
step hostile-input hostile_input
step api-fuzz api_fuzz

profile=$(python3 "$root/infra/local/release-profile.py" "$root/Cargo.toml")
table="$out/table.md"
{
    echo "Benchmarks of $(git -C "$root" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC');"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(uname -sm);"
    echo "profile: release ($profile); run took $(((SECONDS - started) / 60)) min."
    echo
    echo "| figure | value | how |"
    echo "|---|---|---|"
    cat "$rows"
} >"$table"
cat "$table"
