"""Task documents as plain data, and their validation errors in plain words.

`Frozen` is the base of every part of a task (immutable, unknown fields refused);
`field_problems` turns a pydantic `ValidationError` into (field path, plain words) pairs, which
the CLI, the server's 422 answers and the web form show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from disco.models.spec import Layer

__all__ = ["LAYER_TYPES", "Frozen", "field_problems"]


class Frozen(BaseModel):
    """Immutable plain data that refuses unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


LAYER_TYPES: tuple[str, ...] = tuple(
    str(cls.model_fields["type"].default) for cls in get_args(get_args(Layer)[0])
)
"""Every layer type of the portable model, in the order of `disco.models.spec.Layer`."""

_KIND_WORDS = {
    "missing": "is missing",
    "extra_forbidden": "is not a known setting",
    "tuple_type": "should be a list",
    "list_type": "should be a list",
    "int_type": "should be a whole number",
    "int_parsing": "should be a whole number",
    "int_from_float": "should be a whole number",
    "float_type": "should be a number",
    "float_parsing": "should be a number",
    "finite_number": "should be a finite number",
    "bool_type": "should be true or false",
    "bool_parsing": "should be true or false",
    "string_type": "should be text",
    "dict_type": "should be an object, { ... }",
    "model_type": "should be an object, { ... }",
    "model_attributes_type": "should be an object, { ... }",
    "json_invalid": "is not valid JSON",
}


def _number(value: Any) -> str:
    """``0.0`` as ``0``, other values as they are."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _aggregation_rules() -> tuple[str, ...]:
    from disco.aggregation_config import AGGREGATION_RULES  # which itself uses this module

    return tuple(AGGREGATION_RULES)


def _words(err: ErrorDetails) -> str:
    """One pydantic error as a plain sentence fragment that follows its field's path."""
    from disco.aggregation_config import AGGREGATION_RULES  # which itself uses this module

    kind, ctx, loc = err["type"], err.get("ctx") or {}, err["loc"]
    if kind == "extra_forbidden" and "aggregation" in loc[:-1]:
        rule = loc[loc.index("aggregation") + 1]
        if isinstance(rule, str) and rule in AGGREGATION_RULES:
            settings = [n for n in AGGREGATION_RULES[rule].model_fields if n != "rule"]
            return f"is not a setting of {rule} (its settings: {', '.join(settings)})"
    if kind == "extra_forbidden" and "secure_aggregation" in loc[:-1]:
        from disco.aggregation_config import SecureAggregationConfig

        known = ", ".join(SecureAggregationConfig.model_fields)
        return f"is not a setting of secure aggregation (its settings: {known})"
    if kind in _KIND_WORDS:
        return _KIND_WORDS[kind]
    if "aggregation" in loc and kind in ("union_tag_invalid", "union_tag_not_found"):
        rules = ", ".join(AGGREGATION_RULES)
        if kind == "union_tag_not_found":
            return f"needs a 'rule', one of: {rules}"
        return f"unknown aggregation rule {ctx.get('tag')!r} (known: {rules})"
    if kind == "union_tag_invalid":
        return f"unknown layer type {ctx.get('tag')!r} (known: {', '.join(LAYER_TYPES)})"
    if kind == "union_tag_not_found":
        return f"needs a 'type', one of: {', '.join(LAYER_TYPES)}"
    if kind == "literal_error":
        return f"should be {ctx.get('expected')}"
    bounds = {
        "greater_than": ("must be greater than", "gt"),
        "greater_than_equal": ("must be at least", "ge"),
        "less_than": ("must be less than", "lt"),
        "less_than_equal": ("must be at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {_number(ctx.get(key))}"
    if kind in ("string_too_short", "too_short"):
        n = ctx.get("min_length", 1)
        unit = "character" if kind == "string_too_short" else "item"
        return "must not be empty" if n == 1 else f"must have at least {n} {unit}s"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == "^[a-z0-9_]+$":
            return "may only use lowercase letters, digits and '_'"
        if ctx.get("pattern") == "^[0-9a-f]{64}$":
            return "should be a SHA-256 digest: 64 lowercase hexadecimal digits"
        return f"does not have the expected form ({ctx.get('pattern')})"
    message = str(err["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "should be")


def _path(loc: Sequence[int | str]) -> str:
    """A dotted path into the document, without the layer-type tags pydantic inserts."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in LAYER_TYPES and i > 0 and isinstance(loc[i - 1], int):
            continue  # layers.5.dense.units: "dense" is the union member, not a field
        if i > 0 and loc[i - 1] == "aggregation" and part in _aggregation_rules():
            continue  # aggregation.mean.max_share: "mean" is the union member
        parts.append(str(part))
    return ".".join(parts)


def field_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted field path, plain message) per error: ``("model.layers.5.units", "must be ...")``.

    The path is "" for problems of the document as a whole.
    """
    return [(_path(e["loc"]), _words(e)) for e in exc.errors(include_url=False)]
