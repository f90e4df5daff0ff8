"""Operation costs of a unit: which scalar operations it has, what each costs, how
compositions expand and which pipes run in parallel.

`ops` maps an operation kind (`OP_KINDS`) to the cycles one PE takes for it (a *primitive*
operation) or to a *composition* of other operations (`exp: {mac: 6}`). Errors are
`ArchitectureError`s whose field is relative to the unit (`ops.exp.mac`, `pipes.div`).
"""

from __future__ import annotations

from collections.abc import Mapping

from einsum_opt.hardware.errors import ArchitectureError, show
from einsum_opt.hardware.values import IDENTIFIER, FrozenMap, is_int

OP_KINDS: tuple[str, ...] = ("mac", "mul", "add", "max", "exp", "div", "sqrt", "log")
"""Scalar operation kinds a unit's `ops` table may cost. A subtraction counts as an `add`, a
`min` as a `max`, a multiply-accumulate (`a * b + c`) as one `mac`."""

OpCost = int | Mapping[str, int]
"""One entry of a unit's `ops` table: cycles of a primitive operation, or a composition
(operation -> how many of it)."""


def _positive_count(count: object, path: str) -> int:
    if is_int(count) and count > 0:  # type: ignore[operator]
        return count  # type: ignore[return-value]
    raise ArchitectureError(f"expected a positive integer, got {show(count)}", path)


def check_ops(ops: object) -> FrozenMap[str, OpCost]:
    """The `ops` table: known kinds; primitive cycles or compositions of defined operations."""
    if not isinstance(ops, Mapping):
        raise ArchitectureError(f"expected a mapping of operation costs, got {show(ops)}")
    if not ops:
        raise ArchitectureError("expected at least one operation")
    table: dict[str, OpCost] = {}
    for op, cost in ops.items():
        path = str(op)
        if op not in OP_KINDS:
            raise ArchitectureError(
                f"unknown operation; the operations are {', '.join(OP_KINDS)}", path
            )
        if isinstance(cost, Mapping):
            if not cost:
                raise ArchitectureError("expected at least one operation in the composition", path)
            for part, count in cost.items():
                part_path = f"{path}.{part}"
                if part not in OP_KINDS:
                    raise ArchitectureError(
                        f"composition refers to an unknown operation; the operations are "
                        f"{', '.join(OP_KINDS)}",
                        part_path,
                    )
                if part not in ops:
                    raise ArchitectureError(
                        f"composition refers to {part!r}, which this unit's ops do not define "
                        f"(they define {', '.join(ops)})",
                        part_path,
                    )
                _positive_count(count, part_path)
            table[op] = FrozenMap(cost)
        elif is_int(cost) and cost > 0:
            table[op] = cost
        else:
            raise ArchitectureError(
                f"expected a positive number of cycles or a composition such as {{mac: 6}}, "
                f"got {show(cost)}",
                path,
            )
    return FrozenMap(table)


def expand(ops: Mapping[str, OpCost]) -> FrozenMap[str, FrozenMap[str, int]]:
    """Each operation as counts of primitive operations; a cyclic composition is an error."""
    done: dict[str, FrozenMap[str, int]] = {}

    def visit(op: str, stack: list[str]) -> FrozenMap[str, int]:
        if op in done:
            return done[op]
        if op in stack:
            cycle = [*stack[stack.index(op) :], op]
            raise ArchitectureError(f"cyclic composition {' -> '.join(cycle)}", f"ops.{op}")
        cost = ops[op]
        counts: dict[str, int] = {}
        if isinstance(cost, Mapping):
            for part, count in cost.items():
                for primitive, n in visit(part, [*stack, op]).items():
                    counts[primitive] = counts.get(primitive, 0) + count * n
        else:
            counts[op] = 1
        done[op] = FrozenMap(counts)
        return done[op]

    for op in ops:
        visit(op, [])
    return FrozenMap((op, done[op]) for op in ops)


def check_pipes(pipes: object, ops: Mapping[str, OpCost]) -> FrozenMap[str, tuple[str, ...]]:
    """The `pipes` table: each primitive operation of `ops` in exactly one named pipe."""
    if not isinstance(pipes, Mapping):
        raise ArchitectureError(
            f"expected a mapping of pipes by name (name: [operations]), got {show(pipes)}",
            "pipes",
        )
    primitives = [op for op, cost in ops.items() if not isinstance(cost, Mapping)]
    pipe_of: dict[str, str] = {}
    table: dict[str, tuple[str, ...]] = {}
    for name, members in pipes.items():
        path = f"pipes.{name}"
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise ArchitectureError("a pipe name must be an identifier (letters, digits, _)", path)
        if not isinstance(members, list | tuple) or not members:
            raise ArchitectureError(
                f"expected a non-empty list of operations, got {show(members)}", path
            )
        for op in members:
            if op not in OP_KINDS:
                raise ArchitectureError(
                    f"unknown operation {show(op)}; the operations are {', '.join(OP_KINDS)}",
                    path,
                )
            if op not in ops:
                raise ArchitectureError(
                    f"{op!r} is not one of this unit's ops (they are {', '.join(ops)})", path
                )
            if isinstance(ops[op], Mapping):
                raise ArchitectureError(
                    f"{op!r} is a composition (ops.{op}); a pipe lists primitive operations, "
                    f"which are {', '.join(primitives)}",
                    path,
                )
            if op in pipe_of:
                where = "this pipe" if pipe_of[op] == name else f"pipe {pipe_of[op]!r}"
                raise ArchitectureError(
                    f"{op!r} is already in {where}; each operation is in exactly one pipe", path
                )
            pipe_of[op] = name
        table[name] = tuple(members)
    missing = [op for op in primitives if op not in pipe_of]
    if missing:
        raise ArchitectureError(
            f"primitive operations {', '.join(map(repr, missing))} are in no pipe; each "
            f"primitive operation must be in exactly one",
            "pipes",
        )
    return FrozenMap(table)


def check_op_energies(energies: object, ops: Mapping[str, OpCost]) -> FrozenMap[str, float]:
    """`op_energy_pj`: exactly the primitive operations of `ops`, each a non-negative energy."""
    if not isinstance(energies, Mapping):
        raise ArchitectureError(
            f"expected a mapping of energies by operation, got {show(energies)}", "op_energy_pj"
        )
    for op, value in energies.items():
        path = f"op_energy_pj.{op}"
        if op not in OP_KINDS:
            raise ArchitectureError(
                f"unknown operation; the operations are {', '.join(OP_KINDS)}", path
            )
        if op not in ops:
            raise ArchitectureError(f"{op!r} is not one of this unit's ops", path)
        if isinstance(ops[op], Mapping):
            raise ArchitectureError(
                f"{op!r} is a composition (ops.{op}); its energy follows from its parts", path
            )
        if not (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
            raise ArchitectureError(
                f"expected a non-negative energy in pJ, got {show(value)}", path
            )
    for op, cost in ops.items():
        if not isinstance(cost, Mapping) and op not in energies:
            raise ArchitectureError(
                f"required field is missing (the energy of primitive operation {op!r})",
                f"op_energy_pj.{op}",
            )
    return FrozenMap(energies)
