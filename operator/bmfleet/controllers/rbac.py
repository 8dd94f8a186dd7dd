"""Every API permission the operator uses, next to the code that needs it. The chart's ClusterRole is
rendered from this list (`bmfleet rbac`), and a test fails when they drift."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One RBAC policy rule and why it is needed."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str


RULES: tuple[Rule, ...] = (
    # --- framework (kopf) ---
    Rule("", ("events",), ("create",), "kopf posts Events on the builds"),
    # --- application ---
    Rule(
        "bmfleet.io",
        ("bmodelbuilds",),
        ("get", "list", "watch", "patch"),
        "watch builds; kopf patches its progress annotations",
    ),
    Rule("bmfleet.io", ("bmodelbuilds/status",), ("get", "patch"), "write status (status subresource)"),
    Rule(
        "bmfleet.io",
        ("bmodelbuilds/finalizers",),
        ("update",),
        "children carry blockOwnerDeletion, which OwnerReferencesPermissionEnforcement checks",
    ),
    Rule(
        "batch",
        ("jobs",),
        ("get", "list", "watch", "create", "delete"),
        "one compile Job per stage; stale Jobs are deleted",
    ),
    Rule("", ("pods",), ("list", "watch"), "read each step's result record from its pod's termination message"),
    Rule("", ("persistentvolumeclaims",), ("get",), "check that pvc:// inputs exist before creating Jobs"),
    Rule(
        "bmfleet.io",
        ("bmodelrollouts",),
        ("get", "list", "watch", "create", "patch"),
        "watch rollouts (kopf patches annotations and finalizers); a build's spec.publish creates/updates one",
    ),
    Rule("bmfleet.io", ("bmodelrollouts/status",), ("get", "patch"), "write rollout status"),
    Rule(
        "bmfleet.io",
        ("edgedevices",),
        ("get", "list", "watch", "patch"),
        "an index over the devices; rollouts write spec.desired (and its assignment annotation)",
    ),
)


def cluster_role_rules() -> list[dict[str, list[str]]]:
    """The rules as a ClusterRole `rules:` list."""
    return [{"apiGroups": [r.api_group], "resources": list(r.resources), "verbs": list(r.verbs)} for r in RULES]
