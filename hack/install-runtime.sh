#!/bin/sh
# The one install step of bmfleet's runtime (the operator and worker entry points), shared by the Dockerfile,
# docs/operations/worker-image.md and tests/unit/test_dockerfile.py, so what the tests install is what the
# image ships:
#
#   install-runtime.sh wheels SRC DIR   the project's wheel plus every dependency as a wheel, at the versions
#                                       pinned in runtime-requirements.txt (next to this script), into DIR
#   install-runtime.sh install DIR      install bmfleet from DIR alone (--no-index), held to the same pins:
#                                       nothing is fetched at this point and nothing unpinned gets in
#   install-runtime.sh lock SRC         re-resolve the pins from SRC's pyproject.toml (run it with the image's
#                                       Python minor version, 3.11, after changing dependencies)
#
# PYTHON picks the interpreter (default python3); pip runs without its cache and version check.
set -eu
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
LOCK=$HERE/runtime-requirements.txt
PIP="$PYTHON -m pip --no-cache-dir --disable-pip-version-check --no-input"

usage() {
  echo "usage: $0 wheels SRC DIR | install DIR | lock SRC" >&2
  exit 2
}

cmd=${1:-}
case $cmd in
  wheels)
    [ $# -eq 3 ] || usage
    $PIP wheel --quiet --constraint "$LOCK" --wheel-dir "$3" "$2"
    ;;
  install)
    [ $# -eq 2 ] || usage
    $PIP install --quiet --no-index --find-links "$2" --constraint "$LOCK" bmfleet
    ;;
  lock)
    [ $# -eq 2 ] || usage
    report=$(mktemp)
    $PIP install --quiet --dry-run --ignore-installed --report "$report" "$2"
    "$PYTHON" - "$report" "$LOCK" <<'EOF'
import json, sys
report, lock = sys.argv[1:]
items = json.load(open(report))["install"]
pins = sorted(
    f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items if i["metadata"]["name"] != "bmfleet"
)
header = (
    "# bmfleet's runtime dependencies, pinned: `hack/install-runtime.sh lock .` writes this file from\n"
    "# pyproject.toml (resolved for CPython 3.11 on Linux); the image and tests install exactly these.\n"
)
open(lock, "w").write(header + "\n".join(pins) + "\n")
EOF
    rm -f "$report"
    echo "$LOCK"
    ;;
  *)
    usage
    ;;
esac
