#!/usr/bin/env bash
# Build the artifact-store test tools from the Go module proxy, once, into a version-stamped cache directory:
#   crane      (go-containerregistry) — `crane registry serve` is the test OCI registry
#   oras       the ORAS CLI, to check that our artifacts interoperate with what users run
#   versitygw  Versity S3 Gateway (Apache-2.0), posix backend — the test S3 server (MinIO is AGPL: not used)
#   registry   CNCF distribution (Apache-2.0): the registry that has auth (htpasswd Basic, Bearer token) and TLS,
#              which `crane registry serve` lacks; the auth tests run against it
# None of the four modules has replace directives, so plain `go install mod/cmd/x@version` works.
# Prints the bin directory (the tests read BMFLEET_OCI_TOOLS or look under $BMFLEET_CACHE). No-op when cached.
set -euo pipefail
CRANE=${BMFLEET_CRANE_VERSION:-v0.22.1}
ORAS=${BMFLEET_ORAS_VERSION:-v1.3.6}
VGW=${BMFLEET_VERSITYGW_VERSION:-v1.8.0}
DIST=${BMFLEET_DISTRIBUTION_VERSION:-v3.1.2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BMFLEET_CACHE:-$ROOT/.cache}
BIN=$CACHE/oci-tools-crane-$CRANE-oras-$ORAS-versitygw-$VGW-distribution-$DIST/bin
STAMP=$BIN/.complete
if [ -f "$STAMP" ]; then echo "$BIN"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$BIN"
log() { echo "[build-oci-tools] $*" >&2; }
build_tool() {  # NAME PACKAGE@VERSION [extra ldflags]; skipped when the binary is already there
  local name=$1 pkg=$2 ld=${3:-}
  if [ -x "$BIN/$name" ]; then return; fi
  log "$pkg"
  local t0=$SECONDS
  local tmp; tmp=$(mktemp -d "$BIN/../.build-XXXXXX")  # same filesystem: the rename below is atomic, so an
  # interrupted build never leaves half a binary that the next run would take as done
  (cd "$tmp" && GOBIN=$tmp/bin go install -trimpath -ldflags="-s -w $ld" "$pkg")
  mv "$tmp/bin/$name" "$BIN/$name"; rm -rf "$tmp"
  log "$name built in $((SECONDS - t0)) s"
}

build_tool crane "github.com/google/go-containerregistry/cmd/crane@$CRANE" \
  "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$CRANE"
build_tool oras "oras.land/oras/cmd/oras@$ORAS"
build_tool versitygw "github.com/versity/versitygw/cmd/versitygw@$VGW" \
  "-X main.Version=$VGW -X main.Build=proxy -X main.BuildTime=none"
build_tool registry "github.com/distribution/distribution/v3/cmd/registry@$DIST" \
  "-X github.com/distribution/distribution/v3/version.version=$DIST"

"$BIN/crane" version >&2
"$BIN/oras" version | sed -n 1p >&2
"$BIN/versitygw" --version 2>&1 | sed -n 1p >&2
"$BIN/registry" --version >&2
touch "$STAMP"
echo "$BIN"
