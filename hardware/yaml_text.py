"""Reading YAML the way every description file of the project is read."""

from __future__ import annotations

import re
from typing import Any

import yaml

from einsum_opt.hardware.errors import ArchitectureError, show

_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads `1e9` as a number (as YAML 1.2 does) and rejects
    duplicate keys."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {show(key)}",
                    key_node.start_mark,
                )
            seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> object:
    """Plain data from YAML text; `ArchitectureError` naming `source` and the line otherwise."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: builds plain data only
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = "; ".join(part for part in (error.context, error.problem) if part)
        raise ArchitectureError(f"invalid YAML{where}: {problem}", source=source) from None
    except yaml.YAMLError as error:
        raise ArchitectureError(f"invalid YAML: {error}", source=source) from None
    except RecursionError:
        raise ArchitectureError("invalid YAML: nested too deeply", source=source) from None
