"""Generate ``apiextensions.k8s.io/v1`` CustomResourceDefinitions from pydantic v2 models.

The pydantic models in :mod:`bmfleet.api` are the single source of truth for the CRD
schemas (operator conventions §2.1).  pydantic's ``model_json_schema()`` is JSON Schema
2020-12, which the apiserver does not accept as is, so :func:`openapi_schema` rewrites it
into a *structural* OpenAPI v3 schema:

* every ``$ref``/``$defs`` is inlined (recursive models raise :class:`CRDSchemaError`);
  a field-level ``description``/extra next to a ``$ref`` (or in ``allOf: [{$ref}]``) lands on
  the field's own node; ``x-kubernetes-validations`` of the field and of the model are concatenated;
* ``Optional[X]`` (``anyOf: [X, {type: null}]``) becomes ``X``.  ``nullable: true`` is added
  only where dropping a ``null`` would change the meaning: a required ``Optional`` field,
  an ``Optional`` field whose default is not ``None``, and ``Optional`` list items / map
  values.  (The apiserver prunes ``null`` from non-nullable fields, so ``x: X | None = None``
  round-trips as "absent").
* unions: ``int | str`` -> ``x-kubernetes-int-or-string``; unions of literals / enums of
  one scalar type -> one ``enum``; any other ``anyOf``/``oneOf`` raises, naming the field
  (escape hatch: ``Field(json_schema_extra=PRESERVE_UNKNOWN_FIELDS)`` makes it opaque);
* ``title``, ``readOnly``, ``writeOnly``, ``deprecated`` and ``default: null`` are dropped,
  ``const`` becomes a one-value ``enum``, ``examples[0]`` becomes ``example``;
  draft-2020 numeric ``exclusiveMinimum/Maximum`` become draft-4 ``minimum`` + ``exclusive*: true``;
* ``format`` is kept only where the apiserver knows it (see :data:`ALLOWED_FORMATS`);
* ``additionalProperties: false`` (``extra="forbid"``) is dropped (unknown fields are pruned);
  ``additionalProperties: true`` (``dict[str, Any]``, ``extra="allow"``) becomes
  ``x-kubernetes-preserve-unknown-fields: true``; ``Any`` becomes an untyped preserve node;
* ``set[X]`` (``uniqueItems``, forbidden in CRDs) becomes ``x-kubernetes-list-type: set``;
* map-key constraints (``propertyNames``/``patternProperties``, from
  ``dict[Annotated[str, Field(max_length=..., pattern=...)], V]``) become one CEL rule
  ``self.all(k, ...)`` on the map (CRDs have neither keyword);
* ``list[Condition]`` gets ``x-kubernetes-list-type: map`` keyed by ``type``;
* ``Field(json_schema_extra={"x-bmfleet-schema": NAME})`` replaces the field's schema by a
  registered one (:data:`SCHEMA_OVERRIDES`, e.g. ``"conditions"``).

Anything else that has no structural form (unions of objects, tuples, recursion, ``not``,
``if``/``then``...) raises :class:`CRDSchemaError` with the field path
(``WidgetSpec.targets[*].name``); nothing is dropped silently except pure annotations.

Defaults: a non-null ``default`` is kept (nested ``null`` values removed).  A field whose
``default_factory`` builds a *model* gets ``default:`` that model dumped with
``exclude_defaults=True`` -- for ``Field(default_factory=Sub)`` that is ``{}`` -- so that
the apiserver creates the object and then applies the nested schema defaults itself (and
``kubectl get -o yaml`` shows the effective values).  Other factories (``list``, ``dict``)
produce no schema default: an absent value means the same thing to pydantic.

:func:`assert_structural` checks the result (and the defaults against it) the way the
apiserver would; :func:`build_crd` wraps a spec and a status model into a CRD and
:func:`dump_yaml` writes deterministic multi-document YAML.
"""

from __future__ import annotations

from bmfleet.api.crdgen.crd import AGE_COLUMN as AGE_COLUMN
from bmfleet.api.crdgen.crd import CRDSpec, PrinterColumn, build_crd
from bmfleet.api.crdgen.openapi import condition_schema, openapi_schema
from bmfleet.api.crdgen.overrides import SCHEMA_OVERRIDES, register_schema_override
from bmfleet.api.crdgen.structural import assert_structural
from bmfleet.api.crdgen.vocab import ALLOWED_FORMATS, CRDSchemaError
from bmfleet.api.crdgen.vocab import K8S_EXTENSIONS as K8S_EXTENSIONS
from bmfleet.api.crdgen.vocab import SCALAR_TYPES as SCALAR_TYPES
from bmfleet.api.crdgen.vocab import TYPES as TYPES
from bmfleet.api.crdgen.yamlout import dump_yaml
from bmfleet.api.schema_extras import Condition

__all__ = [
    "ALLOWED_FORMATS",
    "SCHEMA_OVERRIDES",
    "CRDSchemaError",
    "CRDSpec",
    "Condition",
    "PrinterColumn",
    "assert_structural",
    "build_crd",
    "condition_schema",
    "dump_yaml",
    "openapi_schema",
    "register_schema_override",
]
