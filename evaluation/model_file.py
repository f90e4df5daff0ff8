"""User workloads for `einsum-eval --models FILE.yaml`: transformer layers described in YAML.

```yaml
# one entry per model, by name
MyLM:
  d_model: 1024   # model width (the linear layers' D)
  heads: 16       # attention heads (H)
  E: 64           # per-head embedding of queries and keys
  F: 64           # per-head embedding of values (optional, default E)
  ffn: 4096       # FFN hidden width (S)
  batch: 8        # optional, default 64
```

Every field is checked; an error names the file and the field by its path
(`models.yaml: MyLM.heads: expected a positive integer, got 'many'`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from einsum_opt.evaluation.workloads import Model
from einsum_opt.frontends.teaal_yaml import check_nesting
from einsum_opt.support.diagnostics import shorten
from einsum_opt.support.errors import UserError

REQUIRED = ("d_model", "heads", "E", "ffn")
"""Fields every model must give."""

OPTIONAL = {"F": None, "batch": 64}
"""Fields a model may give, with their defaults (F: the same as E)."""

MAX_NESTING = 20
"""How deeply the YAML may nest (a model file is two levels deep)."""


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: expected a positive integer, got {shorten(repr(value))}")
    return value


def parse_models(text: str, filename: str) -> list[Model]:
    """The models of a model file's text, in file order; UserError naming the field
    (NotationError, at the place, for YAML nested too deeply)."""
    import yaml

    check_nesting(text, filename, MAX_NESTING)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: error: not valid YAML: {problem}") from None
    if not isinstance(data, dict) or not data:
        raise UserError(
            f"{filename}: expected a mapping from model names to their fields "
            "(d_model, heads, E, F, ffn, batch)"
        )
    models = []
    for name, fields in data.items():
        where = f"{filename}: {shorten(str(name))}"
        try:
            models.append(_model(name, fields, where))
        except ValueError as e:
            raise UserError(str(e)) from None
    return models


def _model(name: object, fields: object, where: str) -> Model:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: a model name must be a non-empty string")
    if not isinstance(fields, dict):
        raise ValueError(
            f"{where}: expected the model's fields (d_model, heads, E, F, ffn, batch), "
            f"got {shorten(repr(fields))}"
        )
    known = (*REQUIRED, *OPTIONAL)
    for key in fields:
        if key not in known:
            raise ValueError(
                f"{where}.{shorten(str(key))}: unknown field (known: {', '.join(known)})"
            )
    for key in REQUIRED:
        if key not in fields:
            raise ValueError(f"{where}.{key}: missing (a positive integer)")
    values = {key: _positive_int(fields[key], f"{where}.{key}") for key in fields}
    return Model(
        name=name.strip(),
        d_model=values["d_model"],
        heads=values["heads"],
        head_dim=values["E"],
        ffn=values["ffn"],
        batch=values.get("batch", 64),
        value_dim=values.get("F"),
    )


def load_models(path: str | Path) -> list[Model]:
    """The models of a model file; UserError when it cannot be read or a field is wrong."""
    from einsum_opt.frontends.loading import decode_source

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"--models: cannot read '{path}': {e.strerror or e}") from None
    return parse_models(decode_source(data, str(path)), str(path))
