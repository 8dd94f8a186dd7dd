#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok)
# from the Go module proxy, once, into a version-stamped cache directory. Re-running is a no-op when the
# stamp exists. See ../shared/docs/reference/control-plane.md for why each step looks like this.
set -euo pipefail
K8S=${BMFLEET_K8S_VERSION:-v1.36.3}
ETCD=${BMFLEET_ETCD_VERSION:-v3.6.16}
KWOK=${BMFLEET_KWOK_VERSION:-v0.8.0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${BMFLEET_CACHE:-$ROOT/.cache}
BIN=$CACHE/controlplane-k8s-$K8S-etcd-$ETCD-kwok-$KWOK/bin
STAMP=$BIN/.complete
if [ -f "$STAMP" ]; then echo "$BIN"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$BIN"
MINOR=${K8S#v1.}; MINOR=${MINOR%%.*}; STG=v0.${K8S#v1.}
case $MINOR in 36) GODEBUG_LINE=go1.26 ;; 35) GODEBUG_LINE=go1.25 ;; *) GODEBUG_LINE=go1.24 ;; esac
WORK=$CACHE/gowork; mkdir -p "$WORK"
log() { echo "[build-control-plane] $*" >&2; }

# --- kube binaries: wrapper module that pins every staging module to its published tag ----------------------
if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kubectl" ]; then
  log "kubernetes $K8S"
  GOMOD=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@$K8S" \
          | python3 -c 'import sys,json;print(json.load(sys.stdin)["GoMod"])')
  D=$WORK/k8s-$K8S; rm -rf "$D"; mkdir -p "$D"; cd "$D"
  go mod init testinfra/k8sbin >/dev/null 2>&1
  go mod edit -go=1.26.0 -godebug=default=$GODEBUG_LINE -require=k8s.io/kubernetes@$K8S
  for m in $(grep -oE '^\s+k8s\.io/[A-Za-z0-9._-]+ v0\.0\.0(\s|$)' "$GOMOD" | awk '{print $1}' | sort -u); do
    go mod edit -replace=$m=$m@$STG
  done
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go mod edit -tool=k8s.io/kubernetes/cmd/$t
  done
  go mod tidy
  DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ); LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean -X $p.buildDate=$DATE"
  done
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    log "go build $t"
    go build -p 2 -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$LD" -o "$BIN/$t" k8s.io/kubernetes/cmd/$t
  done
fi

# --- etcd: wrapper module (go install is impossible: etcd's go.mod has replace directives) ------------------
if [ ! -x "$BIN/etcd" ]; then
  log "etcd $ETCD"
  D=$WORK/etcd-$ETCD; rm -rf "$D"; mkdir -p "$D"; cd "$D"
  go mod init testinfra/etcdbin >/dev/null 2>&1
  go mod edit -go=1.26.0 -require=go.etcd.io/etcd/server/v3@$ETCD -tool=go.etcd.io/etcd/server/v3
  go mod tidy
  go build -trimpath -ldflags="-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
fi

# --- kwok: plain go install (no replace directives); stages come from the module cache at run time ---------
if [ ! -x "$BIN/kwok" ]; then
  log "kwok $KWOK"
  (cd "$(mktemp -d)" && GOBIN=$BIN go install -trimpath -ldflags="-s -w" sigs.k8s.io/kwok/cmd/kwok@$KWOK)
  (cd "$(mktemp -d)" && go mod download "sigs.k8s.io/kwok@$KWOK")
fi
KSTAGE=$(cd "$(mktemp -d)" && go mod download -json "sigs.k8s.io/kwok@$KWOK" \
         | python3 -c 'import sys,json;print(json.load(sys.stdin)["Dir"])')/kustomize/stage
mkdir -p "$BIN/../kwok-stages"
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
         pod/general/pod-ready.yaml pod/general/pod-complete.yaml pod/general/pod-delete.yaml; do
  mkdir -p "$BIN/../kwok-stages/$(dirname "$f")"; cp "$KSTAGE/$f" "$BIN/../kwok-stages/$f"
done
"$BIN/kube-apiserver" --version >&2
"$BIN/etcd" --version | head -1 >&2
touch "$STAMP"
echo "$BIN"
