"""A frozen dataclass that computes its hash once: plans and genomes are hashed many times per
candidate (as keys of the evaluator's tables). The cached hash is left out of pickles, since
another process hashes strings differently."""

from __future__ import annotations

import dataclasses
from typing import Any

_NAMES: dict[type, tuple[str, ...]] = {}
"""Each class's field names (`dataclasses.fields` is slow to call per object)."""


class CachedHash:
    """Mixin for frozen dataclasses: `hash` computed from the fields once, then kept (a
    class sets `__hash__ = CachedHash.__hash__`, since the dataclass would write its own)."""

    def __hash__(self) -> int:
        found: int | None = self.__dict__.get("_hash")
        if found is None:
            names = _NAMES.get(type(self))
            if names is None:
                fields = dataclasses.fields(self)  # type: ignore[arg-type]
                names = _NAMES[type(self)] = tuple(f.name for f in fields)
            found = hash(tuple(getattr(self, name) for name in names))
            object.__setattr__(self, "_hash", found)
        return found

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_hash", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
