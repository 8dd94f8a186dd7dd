#!/usr/bin/env bash
# Headless Chromium for the report browser test (tests/integration/test_report_browser.py): Debian's chromium
# and chromium-driver via apt-get, only when /usr/bin/chromium is missing. Idempotent; a no-op (one stat) when
# present. Prints the browser's path. Playwright drives this browser (executable_path), so no
# `playwright install` download is needed.
set -euo pipefail
CHROMIUM=/usr/bin/chromium  # where Debian puts it, and where the test looks
log() { echo "[setup-browser] $*" >&2; }

if [ -x "$CHROMIUM" ]; then echo "$CHROMIUM"; exit 0; fi

if ! command -v apt-get >/dev/null; then
  log "$CHROMIUM is missing and there is no apt-get: install Chromium yourself"
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { log "$CHROMIUM is missing; run as root or install sudo"; exit 1; }
  SUDO=(sudo)
fi
log "installing chromium and chromium-driver with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >&2
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
[ -x "$CHROMIUM" ] || { log "apt-get finished but $CHROMIUM is still missing"; exit 1; }
"$CHROMIUM" --version >&2
echo "$CHROMIUM"
