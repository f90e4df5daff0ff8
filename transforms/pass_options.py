"""What the passes are and which options they take: `einsum-opt --list-passes`, and pass
pipelines parsed with errors that name the pass, the option, its type and the allowed values.

A pass's options are the fields of its dataclass (xDSL's convention); their types say what a
value may be (`int`, `bool`, `str`, `Literal["a", "b"]`, `X | None` for an optional one,
`tuple[str, ...]` for a list).
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import ArgSpec, parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError
from xdsl.utils.hints import isa

from einsum_opt.support.diagnostics import shorten
from einsum_opt.support.errors import UserError

PassRegistry = Mapping[str, Callable[[], type[ModulePass]]]
"""Pass name -> factory of its class (`transforms.get_all_passes()`)."""


@dataclass(frozen=True)
class PassOption:
    """One option of a pass: its name, type, what values it allows and its default (None when
    the option is required)."""

    name: str
    type: str
    allowed: str
    default: str | None

    def __str__(self) -> str:
        if self.default is None:
            return f"{self.name}: {self.type} (required)"
        return f"{self.name}: {self.type} = {self.default}"


def _is_optional(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)


def _describe(hint: Any) -> tuple[str, str]:
    """(type name, allowed values) of an option's type."""
    if _is_optional(hint):
        (inner,) = [a for a in get_args(hint) if a is not type(None)] or [str]
        name, allowed = _describe(inner)
        return name, f"{allowed}, or nothing"
    if get_origin(hint) is Literal:
        values = [str(v) for v in get_args(hint)]
        return "|".join(values), "one of " + ", ".join(values)
    if get_origin(hint) in (Union, types.UnionType):
        parts = [_describe(a) for a in get_args(hint)]
        return " | ".join(p[0] for p in parts), " or ".join(p[1] for p in parts)
    if get_origin(hint) is tuple:
        (element, *_) = get_args(hint) or (str,)
        name, _ = _describe(element)
        return f"list of {name}", f"comma-separated {name} values"
    simple = {
        bool: ("bool", "true or false"),
        int: ("int", "an integer"),
        float: ("float", "a number"),
        str: ("str", 'a name, or a "quoted string"'),
    }
    return simple.get(hint, (getattr(hint, "__name__", str(hint)), "see the pass"))


def _format_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return ",".join(_format_default(v) for v in value)
    return str(value)


def pass_options(cls: type[ModulePass]) -> list[PassOption]:
    """The options of pass `cls`, in declaration order."""
    hints = get_type_hints(cls)
    options = []
    for field in dataclasses.fields(cls):
        if field.name == "name" or not field.init:
            continue
        hint = hints[field.name]
        type_name, allowed = _describe(hint)
        if field.default is not dataclasses.MISSING:
            default: str | None = _format_default(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = _format_default(field.default_factory())
        else:
            default = "none" if _is_optional(hint) else None
        options.append(PassOption(field.name.replace("_", "-"), type_name, allowed, default))
    return options


def pass_summary(cls: type[ModulePass]) -> str:
    """The first sentence of the pass's docstring on one line, without its examples (the
    parenthesised or `: `-introduced `code` in it)."""
    doc = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
    end = doc.find(". ")
    sentence = doc if end < 0 else doc[: end + 1]
    kept: list[str] = []
    depth = 0
    skipping = False
    for i, char in enumerate(sentence):
        if not skipping and sentence.startswith(" (`", i):
            skipping = True
            continue
        if skipping:
            depth += {"(": 1, ")": -1}.get(char, 0)
            skipping = depth > 0
            continue
        kept.append(char)
    # `: `split-rank{rank=M tile=256}``, an example of the pass's own syntax
    return re.sub(rf":\s*`{re.escape(cls.name)}[^`]*`", "", "".join(kept))


def list_passes(registry: PassRegistry) -> str:
    """Every pass with its one-line summary and its options (name, type, default, allowed
    values), alphabetically: what `einsum-opt --list-passes` prints."""
    lines = []
    for name in sorted(registry):
        cls = registry[name]()
        lines.append(f"{name}")
        lines.append(f"    {pass_summary(cls)}")
        for option in pass_options(cls):
            lines.append(f"    {option}")
    return "\n".join(lines) + "\n"


def _options_text(cls: type[ModulePass]) -> str:
    options = pass_options(cls)
    if not options:
        return "it takes no options"
    return "options: " + ", ".join(str(o) for o in options)


def _bad_value(cls: type[ModulePass], spec: ArgSpec) -> UserError | None:
    """The error for the first given option whose value does not fit its type, if any."""
    hints = get_type_hints(cls)
    by_name = {o.name.replace("-", "_"): o for o in pass_options(cls)}
    for key, values in spec.normalize_parameter_names().parameters.items():
        hint = hints[key]
        value: Any = values[0] if len(values) == 1 else values
        fits = (len(values) == 0 and _is_optional(hint)) or (
            len(values) > 0 and (isa(value, hint) or isa(tuple(values), hint))
        )
        if not fits:
            option = by_name[key]
            given = ",".join(str(v) for v in values) if values else "nothing"
            return UserError(
                f"pass {cls.name}: option {option.name} ({option.type}) expects "
                f"{option.allowed}, got '{shorten(given)}'"
            )
    return None


def instantiate(cls: type[ModulePass], spec: ArgSpec) -> ModulePass:
    """The pass `spec` describes; UserError naming the pass, the option, its type and its
    allowed values when an option is unknown, missing or of the wrong type."""
    fields = {o.name.replace("-", "_"): o for o in pass_options(cls)}
    given = spec.normalize_parameter_names().parameters
    unknown = [k for k in given if k not in fields]
    if unknown:
        raise UserError(
            f"pass {cls.name} has no option '{shorten(unknown[0].replace('_', '-'))}' "
            f"({_options_text(cls)})"
        )
    missing = [o for k, o in fields.items() if o.default is None and k not in given]
    if missing:
        raise UserError(
            f"pass {cls.name} needs option {missing[0].name} ({missing[0].type}: "
            f"{missing[0].allowed}), e.g. {cls.name}{{{missing[0].name}=...}}"
        )
    problem = _bad_value(cls, spec)
    if problem is not None:
        raise problem
    try:
        return cls.from_spec(spec)
    except (ValueError, TypeError) as e:
        raise UserError(f"pass {cls.name}: {e} ({_options_text(cls)})") from None


def parse_passes(text: str, registry: PassRegistry) -> tuple[ModulePass, ...]:
    """The passes of pipeline `text` (`a,b{x=1 y=two}`); UserError for a malformed pipeline,
    an unknown pass or a bad option."""
    try:
        specs: Sequence[ArgSpec] = list(parse_pipeline(text))
    except ArgSpecParseError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise UserError(f"bad pass pipeline '{shorten(text)}': {lines[-1]}") from None
    for spec in specs:
        if spec.name not in registry:
            known = ", ".join(sorted(registry))
            raise UserError(
                f"unknown pass '{shorten(spec.name)}' in '{shorten(text)}' (available: {known}; "
                "see einsum-opt --list-passes)"
            )
    return tuple(instantiate(registry[s.name](), s) for s in specs)
