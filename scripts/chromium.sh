#!/usr/bin/env bash
# Headless Chromium for the report screenshot test (tests/e2e/test_report_screenshot.py).
#   scripts/chromium.sh ensure   install Debian's chromium with apt-get when missing, then print its path
#   scripts/chromium.sh path     print the path of the chromium binary (exit 1 when there is none)
#   scripts/chromium.sh shot URL OUT.png [WIDTHxHEIGHT]   screenshot a page with a fresh profile
set -euo pipefail

find_chromium() {
  local candidate
  for candidate in "${CHROMIUM:-}" chromium chromium-browser google-chrome-stable google-chrome; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

ensure() {
  if path=$(find_chromium); then
    echo "$path"
    return 0
  fi
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "chromium is missing and installing it needs root (apt-get install chromium)" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "installing Debian's chromium (apt-get)..." >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  find_chromium || { echo "apt-get installed chromium but no chromium binary is on PATH" >&2; exit 1; }
}

shot() {
  local url=$1 out=$2 size=${3:-1400x2400} bin profile
  bin=$(find_chromium) || { echo "no chromium: run scripts/chromium.sh ensure" >&2; exit 1; }
  profile=$(mktemp -d)
  trap 'rm -rf "$profile"' RETURN
  "$bin" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
    --window-size="${size/x/,}" --screenshot="$out" "$url" >/dev/null 2>&1
  [[ -s "$out" ]] || { echo "chromium wrote no screenshot to $out" >&2; exit 1; }
}

case "${1:-}" in
  ensure) ensure ;;
  path) find_chromium ;;
  shot) shift; shot "$@" ;;
  *) echo "usage: $0 ensure | path | shot URL OUT.png [WIDTHxHEIGHT]" >&2; exit 2 ;;
esac
