"""bmfleet.sandbox: a real local control plane (etcd, apiserver, KCM, scheduler, kwok, a local kubelet) for
tests and demos. Dev tooling only: product packages must not import it (see the import-linter contracts).

Import what you need from the submodules (`controlplane`, `kubeconfig`, `stages`, ...): this package itself
imports nothing, so `bmfleet <any command>` does not pay for the Kubernetes client unless it uses it.
"""
