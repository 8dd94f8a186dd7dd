"""Deterministic multi-document YAML: :func:`dump_yaml`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import yaml

#: Keys written first (in this order) in every mapping; the rest follow alphabetically,
#: except the children of ``properties``, which keep the model's field order.  So: a manifest
#: reads apiVersion, kind, metadata, spec, status; CRD names read kind, listKind, plural...;
#: a version reads name, served, storage; a schema node reads type, format, description.
_KEY_PRIORITY: Final = (
    "apiVersion",
    "kind",
    "listKind",
    "plural",
    "singular",
    "shortNames",
    "categories",
    "metadata",
    "name",
    "namespace",
    "served",
    "storage",
    "spec",
    "status",
    "type",
    "format",
    "description",
)


def _key_rank(key: str) -> tuple[int, str]:
    return (_KEY_PRIORITY.index(key) if key in _KEY_PRIORITY else len(_KEY_PRIORITY), key)


def _ordered(value: Any, *, keep_order: bool = False) -> Any:
    if isinstance(value, Mapping):
        keys = list(value) if keep_order else sorted(value, key=lambda k: _key_rank(str(k)))
        return {k: _ordered(value[k], keep_order=(k == "properties")) for k in keys}
    if isinstance(value, list | tuple):
        return [_ordered(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    """Block style, no anchors/aliases, multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(objs: Sequence[Mapping[str, Any]]) -> str:
    """Deterministic multi-document YAML (each document starts with ``---``)."""
    docs = [_ordered(obj) for obj in objs]
    return yaml.dump_all(
        docs,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=True,
        width=120,
    )
