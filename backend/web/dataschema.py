"""A dataclass as JSON and as JSON Schema: what lets `shapes` declare each shape once.

`as_json(shape)` is the JSON a route sends, its keys the dataclass's fields; `schema_of(cls)` is
the schema the OpenAPI document gives, from the same fields' types and their `info(...)`. A field
whose default is None is optional: left out of the JSON when it is None, and not required. A
field's `metadata=info(...)` documents it; a shape whose class says `closed = True` is one whose
other keys the server refuses.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def info(description: str | None = None, *, nullable: bool = False, **schema: Any) -> dict:
    """A field's documentation, for `field(metadata=...)`: its description, JSON Schema keywords
    (minimum, format...), and for a field that may be left out, whether a client may also send
    it as null (`nullable`)."""
    return {"description": description, "nullable": nullable, "schema": schema}


def as_json(value: Any) -> Any:
    """The JSON value of a shape (nested shapes and lists too), optional fields left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((field, getattr(value, field.name)) for field in dataclasses.fields(value))
        return {
            field.name: as_json(item)
            for field, item in fields
            if item is not None or not _optional(field)
        }
    if isinstance(value, list | tuple):
        return [as_json(item) for item in value]
    return value


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def component_schemas(shapes: tuple[type, ...]) -> dict[str, Any]:
    """The OpenAPI component schema of each shape, under its class name."""
    return {shape.__name__: schema_of(shape) for shape in shapes}


def schema_of(shape: type) -> dict[str, Any]:
    """The JSON Schema of one shape: its own fields, after its base shape's (`allOf`)."""
    base = next((b for b in shape.__bases__ if dataclasses.is_dataclass(b)), None)
    inherited = {field.name for field in dataclasses.fields(base)} if base else set()
    hints = get_type_hints(shape)
    own = [field for field in dataclasses.fields(shape) if field.name not in inherited]
    schema: dict[str, Any] = {"type": "object"}
    required = [field.name for field in own if not _optional(field)]
    if required:
        schema["required"] = required
    schema["properties"] = {field.name: _field_schema(hints[field.name], field) for field in own}
    if getattr(shape, "closed", False):
        schema["additionalProperties"] = False
    doc = shape.__doc__ or ""
    if doc and not doc.startswith(f"{shape.__name__}("):  # not the dataclass's own signature
        schema["description"] = " ".join(doc.split())
    return {"allOf": [ref(base.__name__), schema]} if base else schema


def _optional(field: dataclasses.Field) -> bool:
    return field.default is None


def _field_schema(hint: Any, field: dataclasses.Field) -> dict[str, Any]:
    if _optional(field) and not field.metadata.get("nullable"):
        # None means left out: the value, when there, is never null.
        kept = [arg for arg in get_args(hint) if arg is not type(None)]
        hint = Union[tuple(kept)] if kept else hint  # noqa: UP007 (built from a list)
    schema = type_schema(hint) | field.metadata.get("schema", {})
    if description := field.metadata.get("description"):
        schema["description"] = description
    return schema


def type_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a Python type: str, int, float, bool, None, Literal, list, a shape, or
    a union of them."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [type_schema(arg) for arg in get_args(hint)]
        if all(set(option) == {"type"} for option in options):
            return {"type": [option["type"] for option in options]}
        return {"anyOf": options}
    if origin is Literal:
        values = list(get_args(hint))
        return {"type": _JSON_TYPES[type(values[0])], "enum": values}
    if origin is list:
        (item,) = get_args(hint)
        return {"type": "array", "items": type_schema(item)}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return ref(hint.__name__)
    return {"type": _JSON_TYPES[hint]}


def references(schema: Any) -> set[str]:
    """The component names a schema (or any part of a document) refers to."""
    if isinstance(schema, Mapping):
        found = {schema["$ref"].rsplit("/", 1)[1]} if "$ref" in schema else set()
        return found.union(*(references(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(references(value) for value in schema))
    return set()
