#!/usr/bin/env bash
# Create, once, the Python 3.10 virtual environment that runs TPU-MLIR 1.30.2 on a CPU-only machine, under
# the version-stamped cache: ${BMFLEET_CACHE:-<repo>/.cache}/tpu-mlir-1.30.2/venv. Prints the venv's bin dir
# as its last stdout line (everything else goes to stderr); a no-op when the stamp file exists.
#
# The four local fixes follow ../shared/docs/reference/tpu-mlir-on-cpu.md ("Install"):
#   1. move the wheel's bundled Ubuntu glibc (libc.so.6, libm.so.6, libpthread.so.0) out of
#      tpu_mlir/lib/third_party/, or every tool fails with "version `GLIBC_2.36' not found";
#   2. psutil (imported, not declared);
#   3. the real torch from PyPI (imported at module level; the cp310 wheel is the CUDA build and runs on CPU);
#   4. setuptools<81 pinned AFTER torch (torch upgrades it to a release without pkg_resources).
#
# Safe to re-run after an interruption: without the stamp, a half-built venv is removed and rebuilt. The
# wheels are kept in a wheelhouse inside pip's cache dir (`pip cache dir`/bmfleet-wheelhouse/tpu-mlir-1.30.2;
# BMFLEET_WHEELHOUSE overrides): pip's own HTTP cache stays empty behind this registry mirror (its responses
# carry no cache headers), while `pip wheel -w` skips every file already in the wheelhouse, so a re-run or a
# rebuild downloads nothing twice; the install itself then runs with --no-index from the wheelhouse.
# A lock keeps two concurrent runs (e.g. two test processes) apart.
# Exit codes: 0 ready, 3 no Python 3.10 found, anything else: the install failed (see stderr).
#
# Environment: BMFLEET_CACHE (cache root), BMFLEET_PYTHON310 (interpreter to use), BMFLEET_WHEELHOUSE,
# BMFLEET_TORCH_SPEC (default torch==2.14.1, the release the reference page was written against).
set -euo pipefail
VERSION=1.30.2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BMFLEET_CACHE:-$ROOT/.cache}
DIR=$CACHE/tpu-mlir-$VERSION
VENV=$DIR/venv
STAMP=$DIR/complete.stamp
TORCH_SPEC=${BMFLEET_TORCH_SPEC:-torch==2.14.1}

log() { echo "[setup-tpu-mlir +${SECONDS}s] $*" >&2; }

if [ -f "$STAMP" ] && [ -x "$VENV/bin/model_deploy" ]; then echo "$VENV/bin"; exit 0; fi

find_python310() {
  local candidate
  if [ -n "${BMFLEET_PYTHON310:-}" ]; then
    [ -x "$BMFLEET_PYTHON310" ] || { log "BMFLEET_PYTHON310=$BMFLEET_PYTHON310 is not an executable"; return 1; }
    echo "$BMFLEET_PYTHON310"; return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    candidate=$(printf '%s\n' "$(pyenv root)"/versions/3.10.*/bin/python | sort -V | tail -1)
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  fi
  if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null
  then
    command -v python3.10; return 0
  fi
  return 1
}

# The install runs as one function, parsed whole before it starts, so a script edited or updated while
# it runs (e.g. by a checkout) cannot make bash read the rest from a shifted offset.
install_tpu_mlir() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
  # Another run may have finished while we waited for the lock.
  if [ -f "$STAMP" ] && [ -x "$VENV/bin/model_deploy" ]; then echo "$VENV/bin"; exit 0; fi

  if ! PY=$(find_python310); then
    log "no Python 3.10 found (pyenv versions 3.10.*, python3.10 on PATH, or BMFLEET_PYTHON310); TPU-MLIR $VERSION needs it"
    exit 3
  fi
  log "TPU-MLIR $VERSION into $VENV with $PY ($("$PY" -V 2>&1))"
  start=$(date +%s)

  rm -f "$STAMP"
  if [ -e "$VENV" ]; then log "removing an unfinished venv from an earlier run"; rm -rf "$VENV"; fi
  "$PY" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
  REQS=("tpu_mlir[onnx]==$VERSION" psutil "$TORCH_SPEC")
  if [ -z "${BMFLEET_WHEELHOUSE:-}" ] && PIP_CACHE=$("${PIP[@]}" cache dir 2>/dev/null); then
    WHEELS=$PIP_CACHE/bmfleet-wheelhouse/tpu-mlir-$VERSION
  else
    WHEELS=${BMFLEET_WHEELHOUSE:-$DIR/wheels}
  fi
  mkdir -p "$WHEELS"

  log "wheels of ${REQS[*]} and setuptools<81 into $WHEELS (files already there are not downloaded again)"
  "${PIP[@]}" wheel --wheel-dir "$WHEELS" "${REQS[@]}" >&2
  "${PIP[@]}" wheel --wheel-dir "$WHEELS" --no-deps "setuptools<81" >&2
  log "pip install ${REQS[*]} from the wheelhouse"
  "${PIP[@]}" install --no-index --find-links "$WHEELS" "${REQS[@]}" >&2
  log "pip install 'setuptools<81' (after torch, which upgrades it: tpu_mlir imports pkg_resources)"
  "${PIP[@]}" install --no-index --find-links "$WHEELS" "setuptools<81" >&2

  SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  THIRD=$SITE/tpu_mlir/lib/third_party
  [ -d "$THIRD" ] || { log "missing $THIRD: unexpected tpu_mlir wheel layout"; exit 1; }
  mkdir -p "$DIR/bundled-glibc"
  for lib in libc.so.6 libm.so.6 libpthread.so.0; do
    if [ -e "$THIRD/$lib" ] || [ -L "$THIRD/$lib" ]; then
      log "moving bundled $lib out of tpu_mlir/lib/third_party (host glibc $(ldd --version | head -1 | awk '{print $NF}'))"
      mv -f "$THIRD/$lib" "$DIR/bundled-glibc/$lib"
    fi
  done

  log "checking the tools start"
  "$VENV/bin/python" -c 'import tpu_mlir, torch, psutil, pkg_resources' >&2
  "$VENV/bin/model_deploy" --help >/dev/null

  {
    echo "tpu_mlir==$VERSION"
    "${PIP[@]}" freeze --all 2>/dev/null | grep -Ei '^(torch|setuptools|onnx|onnxruntime|numpy|psutil)==' || true
    echo "python=$("$VENV/bin/python" -V 2>&1)"
    echo "seconds=$(($(date +%s) - start))"
    date -u +%Y-%m-%dT%H:%M:%SZ
  } >"$STAMP.tmp"
  mv "$STAMP.tmp" "$STAMP"
  log "done in $(($(date +%s) - start)) s; $(du -sh "$VENV" | cut -f1) installed"
  echo "$VENV/bin"
}

install_tpu_mlir "$@"
