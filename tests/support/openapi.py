"""Check a real answer against the app's own OpenAPI document: its status is documented for the
operation, its content type too, and its JSON body fits the schema with no key left undeclared."""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator


def closed_components(document: dict[str, Any]) -> dict[str, Any]:
    """The document's components, each object shape refusing keys it does not declare (bar the
    shapes others extend with `allOf`: their own check cannot see the extension's keys)."""
    components = copy.deepcopy(document["components"])
    schemas = components["schemas"]
    extended = {
        part["$ref"].rsplit("/", 1)[1]
        for schema in schemas.values()
        for part in schema.get("allOf", [])
        if "$ref" in part
    }
    for name, schema in schemas.items():
        if name not in extended:
            schema["unevaluatedProperties"] = False
    return components


def check_documented(document: dict[str, Any], method: str, path: str, response) -> None:
    """Fail unless `response` to `method path` (the document's path template) is described."""
    operation = document["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path}: {status} is not documented"
    content = operation["responses"][status].get("content")
    if content is None:
        assert not response.get_data(), f"{method} {path}: {status} documents no body"
        return
    kinds = [kind for kind in content if _matches(kind, response.mimetype)]
    assert kinds, f"{method} {path}: {status} as {response.mimetype} is not documented"
    if response.mimetype == "application/json":
        schema = content["application/json"]["schema"] | {"components": closed_components(document)}
        Draft202012Validator(schema).validate(response.get_json())


def _matches(documented: str, mimetype: str) -> bool:
    if documented.endswith("/*"):
        return mimetype.startswith(documented[:-1])
    return documented == mimetype
