"""A plugin's config form, from its JSON Schema: one input per property (required marked, the description as help,
an enum as a select, numbers with their bounds, a secret as a password input, the default filled), and the values
a submitted form carries turned back into the JSON the plugin's model validates.

A secret is never written back into a page: after a refused submit its input is empty again.
"""

from dataclasses import dataclass, field
from typing import Any

from plugins.sdk.config import secret_fields

JsonObject = dict[str, Any]  # Any: JSON Schema values
PREFIX = "config."  # a config field's name in the form (`config.server`), so it cannot clash with the pool's own


@dataclass
class FormField:
    """One input of a config form."""

    name: str
    label: str
    kind: str  # text, password, number, checkbox, select
    required: bool
    help: str = ""
    value: str = ""
    options: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)  # min, max, step, pattern, minlength, maxlength
    prefix: str = PREFIX

    @property
    def input_name(self) -> str:
        """The name the input is posted under."""
        return self.prefix + self.name

    @property
    def input_id(self) -> str:
        """The input's id (its label's `for`)."""
        return self.prefix.replace(".", "-") + self.name


def _resolved(prop: JsonObject, schema: JsonObject) -> JsonObject:
    """The property with its `$ref` (pydantic puts enums in `$defs`) and an optional's `anyOf [X, null]` folded in."""
    merged = dict(prop)
    ref = merged.pop("$ref", None)
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        merged = {**schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {}), **merged}
    variants = [variant for variant in merged.pop("anyOf", []) if variant.get("type") != "null"]
    if len(variants) == 1:
        merged = {**_resolved(variants[0], schema), **merged}
    return merged


def _bounds(prop: JsonObject) -> dict[str, str]:
    attributes: dict[str, str] = {}
    if "minimum" in prop:
        attributes["min"] = str(prop["minimum"])
    if "maximum" in prop:
        attributes["max"] = str(prop["maximum"])
    if "exclusiveMinimum" in prop:  # no HTML equivalent: the nearest allowed value, and the server says the rest
        attributes["min"] = str(prop["exclusiveMinimum"] + (1 if prop.get("type") == "integer" else 0))
    attributes["step"] = "1" if prop.get("type") == "integer" else "any"
    return attributes


def config_form(
    schema: JsonObject, given: dict[str, str] | None = None, *, prefix: str = PREFIX, defaults: JsonObject | None = None
) -> list[FormField]:
    """The form of a config JSON Schema, filled with `given` (what was posted), else `defaults`, else the schema's
    defaults; never a secret."""
    given = given or {}
    required = set(schema.get("required", []))
    secrets = secret_fields(schema)
    fields = []
    for name, raw in schema.get("properties", {}).items():
        prop = _resolved(raw, schema)
        kind, options, attributes = "text", [], {}
        if name in secrets:
            kind = "password"
        elif "enum" in prop:
            kind, options = "select", [str(value) for value in prop["enum"]]
        elif prop.get("type") == "boolean":
            kind = "checkbox"
        elif prop.get("type") in ("integer", "number"):
            kind, attributes = "number", _bounds(prop)
        if kind in ("text", "password"):
            for key, attribute in (("pattern", "pattern"), ("minLength", "minlength"), ("maxLength", "maxlength")):
                if key in prop:
                    attributes[attribute] = str(prop[key])
        default = (defaults or {}).get(name, prop.get("default"))
        value = "" if kind == "password" else given.get(name, "" if default is None else _text(default))
        label = str(prop.get("title") or name.replace("_", " ").capitalize())
        fields.append(
            FormField(
                name,
                label,
                kind,
                name in required,
                str(prop.get("description", "")),
                value,
                options,
                attributes,
                prefix,
            )
        )
    return fields


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def posted_config(form: dict[str, str], fields: list[FormField]) -> JsonObject:
    """The config JSON of a submitted form: numbers as numbers, a checkbox as a boolean, an empty optional input
    left out (the plugin's default applies)."""
    config: JsonObject = {}
    for each in fields:
        raw = form.get(each.input_name)
        if each.kind == "checkbox":
            config[each.name] = raw is not None
            continue
        if raw is None or raw == "":
            continue
        if each.kind == "number":
            try:
                config[each.name] = int(raw) if each.attributes.get("step") == "1" else float(raw)
            except ValueError:
                config[each.name] = raw  # the model refuses it, naming the field
            continue
        config[each.name] = raw
    return config


def given_values(form: dict[str, str], fields: list[FormField]) -> dict[str, str]:
    """What was typed, to fill the form again after a refusal (a checkbox as true/false; secrets never)."""
    values = {}
    for each in fields:
        if each.kind == "password":
            continue
        raw = form.get(each.input_name)
        values[each.name] = ("true" if raw is not None else "false") if each.kind == "checkbox" else (raw or "")
    return values


def update_form(schema: JsonObject) -> list[FormField]:
    """The form of a config change: every field optional and empty (empty = unchanged; the current values are
    sealed, so none is shown), a boolean as a choice of unchanged, true or false, an enum with unchanged first."""
    fields = config_form(schema)
    for each in fields:
        each.required, each.value = False, ""
        if each.kind == "checkbox":
            each.kind, each.options = "select", ["", "true", "false"]
        elif each.kind == "select":
            each.options = ["", *each.options]
    return fields


def posted_changes(form: dict[str, str], fields: list[FormField], schema: JsonObject) -> JsonObject:
    """The config fields a change form sets (the empty ones stay as they are); a boolean from its choice."""
    booleans = {
        name for name, prop in schema.get("properties", {}).items() if _resolved(prop, schema).get("type") == "boolean"
    }
    changes = posted_config({key: value for key, value in form.items() if value != ""}, fields)
    for name in booleans & set(changes):
        changes[name] = changes[name] == "true"
    return changes
