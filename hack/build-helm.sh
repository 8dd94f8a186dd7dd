#!/usr/bin/env bash
# Build the helm CLI from the Go module proxy into the version-stamped cache (no-op when cached).
# The ldflags mirror helm's Makefile so `helm version` and offline `helm template` report the right versions
# (see ../shared/docs/reference/control-plane.md §4).
set -euo pipefail
HELM=${BMFLEET_HELM_VERSION:-v3.21.4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BMFLEET_CACHE:-$ROOT/.cache}
BIN=$CACHE/helm-$HELM/bin
if [ -x "$BIN/helm" ]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"
echo "[build-helm] helm $HELM" >&2
(cd "$(mktemp -d)" && GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN=$BIN go install -trimpath -ldflags="-s -w \
  -X helm.sh/helm/v3/internal/version.version=$HELM \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=36" \
  "helm.sh/helm/v3/cmd/helm@$HELM")
"$BIN/helm" version --short >&2
echo "$BIN"
