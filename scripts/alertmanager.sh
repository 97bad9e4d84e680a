#!/usr/bin/env bash
# Alertmanager for tests and local runs: Debian's prometheus-alertmanager (0.25), which also ships amtool.
#
#   scripts/alertmanager.sh ensure    install it with apt-get when missing (fails clearly when it can't)
#   scripts/alertmanager.sh check     amtool check-config on the shipped alerts/alertmanager.yml
#   scripts/alertmanager.sh start     run one on 127.0.0.1:${ALERTMANAGER_PORT:-9093} (prints ALERTMANAGER_URL=...)
#   scripts/alertmanager.sh stop      stop the one `start` started (by its pid file)
#   scripts/alertmanager.sh status
#
# Environment: ALERTMANAGER_CONFIG (default alerts/alertmanager.yml), ALERTMANAGER_PORT (9093),
# ALERTMANAGER_DIR (state: .llmpulse/alertmanager), LLMPULSE_ALERTMANAGER_BIN / LLMPULSE_AMTOOL_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="${ALERTMANAGER_CONFIG:-$ROOT/alerts/alertmanager.yml}"
PORT="${ALERTMANAGER_PORT:-9093}"
STATE_DIR="${ALERTMANAGER_DIR:-$ROOT/.llmpulse/alertmanager}"
PID_FILE="$STATE_DIR/alertmanager.pid"
LOG_FILE="$STATE_DIR/alertmanager.log"
PACKAGE=prometheus-alertmanager

die() { echo "alertmanager.sh: $*" >&2; exit 1; }

find_bin() {  # $1 = env override, rest = candidate names
    local override="$1"; shift
    if [[ -n "$override" ]]; then
        [[ -x "$override" ]] && { echo "$override"; return 0; }
        return 1
    fi
    local name
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
        [[ -x "/usr/bin/$name" ]] && { echo "/usr/bin/$name"; return 0; }
    done
    return 1
}

am_bin() { find_bin "${LLMPULSE_ALERTMANAGER_BIN:-}" prometheus-alertmanager alertmanager; }
amtool_bin() { find_bin "${LLMPULSE_AMTOOL_BIN:-}" amtool; }

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else die "need root to run '$*' (or install $PACKAGE yourself, or set LLMPULSE_ALERTMANAGER_BIN)"; fi
}

cmd_ensure() {
    if am_bin >/dev/null && amtool_bin >/dev/null; then
        "$(am_bin)" --version 2>&1 | head -n1
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "$PACKAGE is not installed and there is no apt-get here; install Alertmanager >= 0.25 and amtool, or point LLMPULSE_ALERTMANAGER_BIN and LLMPULSE_AMTOOL_BIN at them"
    echo "installing $PACKAGE with apt-get ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    # Try the current package lists first; refresh them only when the package is not found.
    if ! as_root apt-get install -y -q --no-install-recommends "$PACKAGE" >&2; then
        as_root apt-get update -q >&2 || die "apt-get update failed (no network to the Debian mirror?)"
        as_root apt-get install -y -q --no-install-recommends "$PACKAGE" >&2 \
            || die "apt-get install $PACKAGE failed; see the output above"
    fi
    am_bin >/dev/null || die "$PACKAGE installed but no prometheus-alertmanager binary found"
    amtool_bin >/dev/null || die "$PACKAGE installed but no amtool binary found"
    # The Debian package may start a system service on :9093; tests use their own ports, so it is left alone.
    "$(am_bin)" --version 2>&1 | head -n1
}

cmd_check() {
    local amtool; amtool="$(amtool_bin)" || die "amtool missing: run '$0 ensure'"
    "$amtool" check-config "$CONFIG"
}

ready() {  # curl when present, else Python's urllib
    local url="http://127.0.0.1:$PORT/-/ready"
    if command -v curl >/dev/null 2>&1; then curl -fsS "$url" >/dev/null 2>&1
    else python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" >/dev/null 2>&1; fi
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid; pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
    return 1
}

cmd_start() {
    local bin; bin="$(am_bin)" || die "Alertmanager missing: run '$0 ensure'"
    if pid="$(running_pid)"; then
        echo "already running (pid $pid)"; echo "ALERTMANAGER_URL=http://127.0.0.1:$PORT"; return 0
    fi
    mkdir -p "$STATE_DIR/data"
    nohup "$bin" --config.file="$CONFIG" --storage.path="$STATE_DIR/data" \
        --web.listen-address="127.0.0.1:$PORT" --cluster.listen-address= >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    local i
    for i in $(seq 1 100); do
        if ready; then
            echo "ALERTMANAGER_URL=http://127.0.0.1:$PORT"
            return 0
        fi
        kill -0 "$(cat "$PID_FILE")" 2>/dev/null || { tail -n 30 "$LOG_FILE" >&2; rm -f "$PID_FILE"; die "Alertmanager exited at start-up"; }
        sleep 0.1
    done
    tail -n 30 "$LOG_FILE" >&2
    die "Alertmanager not ready on 127.0.0.1:$PORT after 10s (log: $LOG_FILE)"
}

cmd_stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped (pid $pid)"
    else
        echo "not running"
    fi
    rm -f "$PID_FILE"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then echo "running (pid $pid) on http://127.0.0.1:$PORT"; else echo "not running"; return 1; fi
}

case "${1:-}" in
    ensure) cmd_ensure ;;
    check) cmd_check ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 ensure|check|start|stop|status" >&2; exit 2 ;;
esac
