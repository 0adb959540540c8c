"""The commented ``demandloop.toml`` that ``demandloop init`` writes.

Lists of tables (mailboxes, sequences, workflows, segments, stages) are written in TOML's
table form, ``[[activate.mailboxes]]``, as the docs show them: a file that said
``mailboxes = []`` could not be extended with the docs' ``[[activate.mailboxes]]`` block
(TOML refuses to redefine the key). An empty list becomes a commented example of one entry.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

HEADER = [
    "# demandloop workspace configuration.",
    "# Every key is optional; shown values are the defaults.",
    "# Environment variables override this file: DEMANDLOOP_<SECTION>__<KEY>.",
    "",
]


def render_example(settings: type[BaseModel]) -> str:
    lines = list(HEADER)
    defaults = settings.model_construct().model_dump()
    for name, field in settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        _section(lines, name, model, defaults[name])
    return "\n".join(lines)


def _item_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``list[Model]`` field, else None."""
    if typing.get_origin(annotation) is list:
        (arg,) = typing.get_args(annotation) or (None,)
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _section(lines: list[str], path: str, model: type[BaseModel], values: dict[str, Any]) -> None:
    lines.append(f"[{path}]")
    if model.__doc__:
        # one comment line however the docstring wraps: a wrapped line would not be a comment
        lines.append(f"# {' '.join(model.__doc__.split())}")
    nested: list[tuple[str, type[BaseModel]]] = []
    tables: list[tuple[str, type[BaseModel], str | None]] = []
    for name, sub in model.model_fields.items():
        ann = sub.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((name, ann))
            continue
        item = _item_model(ann)
        if item is not None:
            tables.append((name, item, sub.description))
            continue
        value = values[name]
        lines.append(f"# {sub.description}")
        if value is None:
            lines.append(f"# {name} =")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    lines.append("")
    for name, item, description in tables:
        lines.append(f"# {description}")
        if values[name]:
            for entry in values[name]:
                lines.append(f"[[{path}.{name}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in entry.items()
                             if v is not None)
        else:
            _commented(lines, f"{path}.{name}", item)
        lines.append("")
    for name, sub_model in nested:
        _section(lines, f"{path}.{name}", sub_model, values[name])


def _commented(lines: list[str], path: str, model: type[BaseModel]) -> None:
    """A commented example entry of a list of tables, its own lists of tables included."""
    lines.append(f"# [[{path}]]")
    inner = []
    for name, sub in model.model_fields.items():
        item = _item_model(sub.annotation)
        if item is not None:
            inner.append((name, item))
            continue
        default = sub.get_default(call_default_factory=True) \
            if sub.default is not PydanticUndefined or sub.default_factory else None
        shown = "..." if default is None else _toml_value(_plain(default))
        lines.append(f"# {name} = {shown}  # {sub.description or ''}".rstrip(" #"))
    for name, item in inner:
        _commented(lines, f"{path}.{name}", item)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "inf" if value == float("inf") else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
