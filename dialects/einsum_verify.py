"""Cascade-wide checks: names, declared ranks and index ranges across all Einsums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import VerifyException

from einsum_opt.dialects.einsum_attrs import TensorType, format_indices, format_rank_entries
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.dialects.locations import OpVerifyException

if TYPE_CHECKING:
    from einsum_opt.dialects.einsum import CascadeOp, EinsumOp


def verify_cascade(cascade: CascadeOp) -> None:
    """Raise `VerifyException` naming the cascade and Einsum when the cascade is ill formed."""
    from einsum_opt.dialects.einsum import EinsumOp, EinsumStructure, ReturnOp, SizeOp

    where = f"cascade @{cascade.cascade_name}"
    names = [n.data for n in cascade.input_names.data]
    arg_types = [a.type for a in cascade.body.block.args]
    if len(names) != len(arg_types) or arg_types != list(cascade.function_type.inputs.data):
        raise OpVerifyException(
            cascade, f"{where}: input names, block arguments and function type disagree"
        )
    declared = cascade.ranks.names
    sizes = cascade.rank_sizes()

    def check_rank(rank: str, context: str, at: Operation = cascade) -> None:
        if rank not in declared:
            raise OpVerifyException(
                at,
                f"{context}: rank {rank} is not declared in {where} "
                f"ranks({format_rank_entries(cascade.ranks.data)})",
            )

    position = {op: i for i, op in enumerate(cascade.body.block.ops)}
    seen: set[str] = set()
    for n, t in zip(names, arg_types, strict=True):
        if not n.isidentifier():
            raise OpVerifyException(cascade, f"{where}: input name '{n}' is not an identifier")
        if n in seen:
            raise OpVerifyException(cascade, f"{where}: tensor {n} is defined twice")
        seen.add(n)
        assert isinstance(t, TensorType)
        for r in t.rank_names:
            check_rank(r, f"{where}: input {n}")
    for op in cascade.body.block.ops:
        if isinstance(op, ReturnOp):
            continue
        if not isinstance(op, EinsumOp):
            if isinstance(op, EinsumStructure):  # a loop nest: its loops are checked by itself
                if op.tensor_name in seen:
                    raise OpVerifyException(
                        op,
                        f"{where}: tensor {op.tensor_name} is defined twice",
                    )
                seen.add(op.tensor_name)
                continue
            raise OpVerifyException(
                op, f"{where}: only einsum.einsum ops may appear in a cascade, got {op.name}"
            )
        name = op.tensor_name
        if name in seen:
            raise OpVerifyException(op, f"{where}: tensor {name} is defined twice")
        seen.add(name)
        context = op.describe()
        for r in op.result_type.rank_names:
            check_rank(r, context, op)
        for v in op.variables():
            check_rank(rank_of(v), context, op)
        for size in op.body.walk():
            if isinstance(size, SizeOp):
                check_rank(size.rank.data, context, op)
        for value, indices in op.accesses():
            for index in indices:
                for s in index.sizes:
                    check_rank(s, context, op)
            _check_ranges(op, value, indices, sizes)
            owner = None if value is None else value.owner
            if isinstance(owner, Operation) and position.get(owner, -1) > position[op]:
                _check_read_ahead(op, owner, indices)
    for t in cascade.function_type.outputs.data:
        assert isinstance(t, TensorType)
        for r in t.rank_names:
            check_rank(r, f"{where}: result")
    for einsum in cascade.einsums():
        _check_assembled_output(einsum, cascade.ranks.data, sizes)
    for einsum in cascade.einsums():
        _check_mapping(einsum, sizes)


def _check_assembled_output(
    op: EinsumOp, table: Sequence[tuple[str, object]], sizes: dict[str, int]
) -> None:
    """An output index `r1*R0+r0` on rank R writes the tiles of R: the cascade must declare
    R1 = R / R0, and the tiles must cover R exactly (R0 divides R)."""
    declared = dict(table)
    for rank, index in zip(op.result_type.rank_names, op.output_indices, strict=True):
        parts = index.as_blocked()
        if parts is None:
            continue
        outer, inner = (rank_of(v) for v in parts)
        if declared.get(outer) != (rank, inner):
            raise OpVerifyException(
                op,
                f"{op.describe()}: output index {index} assembles rank {rank} from tiles, but "
                f"the cascade does not declare {outer} = {rank} / {inner}",
            )
        if sizes[rank] % sizes[inner]:
            raise OpVerifyException(
                op,
                f"{op.describe()}: output index {index} assembles rank {rank} of size "
                f"{sizes[rank]} from tiles of {sizes[inner]}, which do not divide it",
            )


def _check_ranges(
    op: EinsumOp, value: SSAValue | None, indices: Sequence[IndexExpr], sizes: dict[str, int]
) -> None:
    from einsum_opt.dialects.einsum import EinsumStructure

    t = op.access_type(value)
    producer = op if value is None else value.owner
    iterative = producer.iterative_rank() if isinstance(producer, EinsumStructure) else None
    for rank, index in zip(t.rank_names, indices, strict=True):
        lo, hi = index.bounds(sizes.__getitem__)
        top = sizes[rank] if iterative == rank.lower() else sizes[rank] - 1
        if lo < 0 or hi > top:
            tensor = op.access_name(value)
            raise OpVerifyException(
                op,
                f"{op.describe()}: index {index} of {tensor}{format_indices(indices)} ranges over "
                f"[{lo}, {hi}] but rank {rank} has {'indices 0..' + str(top)} "
                f"(size {sizes[rank]})",
            )


def _check_read_ahead(op: EinsumOp, producer: object, indices: Sequence[IndexExpr]) -> None:
    """A tensor defined later may only be read at the previous index of its iterative rank."""
    from einsum_opt.dialects.einsum import EinsumStructure

    if isinstance(producer, EinsumStructure):
        it = producer.iterative_rank()
        if it is not None and it in op.output_variables():
            expected = [
                IndexExpr.var(it) if ix.as_offset() == (it, 1) else ix
                for ix in producer.output_indices
            ]
            if list(indices) == expected:
                return
        name = producer.tensor_name
    else:
        name = "?"
    raise OpVerifyException(
        op,
        f"{op.describe()}: reads {name}{format_indices(indices)} before {name} is defined; only "
        "the previous value of an iterative rank that this einsum also iterates may be read ahead",
    )


def _check_mapping(op: EinsumOp, sizes: dict[str, int]) -> None:
    from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr, check_mapping

    mapping = op.attributes.get(MAPPING_ATTR)
    if mapping is None:
        return
    if not isinstance(mapping, MappingAttr):
        raise OpVerifyException(op, f"{op.describe()}: 'mapping' must be an #einsum.mapping")
    try:
        check_mapping(op, mapping, sizes)
    except VerifyException as e:
        raise OpVerifyException(op, str(e)) from None


def verify_einsum(op: EinsumOp) -> None:
    """The checks of one Einsum on its own (output and access indices, map region, iterative
    rank and initial value, reductions); raises `OpVerifyException`."""
    from einsum_opt.dialects.einsum import YieldOp

    name = op.tensor_name
    if not name.isidentifier():
        raise OpVerifyException(op, f"einsum name '{name}' is not an identifier")
    where = op.describe()
    accesses = op.accesses()
    selfs = op.self_read_positions()
    if len(selfs) + len(op.inputs) != len(op.access) or any(
        not 0 <= s < len(op.access) for s in selfs
    ):
        raise OpVerifyException(
            op,
            f"{where}: {len(op.access)} accesses do not match {len(op.inputs)} operands "
            f"and self reads {list(selfs)}",
        )
    out_t = op.result_type
    # Output indices: one per rank, the rank's own variable (+1 on an iterative rank).
    if len(op.output_indices) != len(out_t.rank_names):
        raise OpVerifyException(
            op,
            f"{where}: output has {len(op.output_indices)} indices but type {out_t} has "
            f"{len(out_t.rank_names)} ranks",
        )
    iterative: list[str] = []
    for rank, index in zip(out_t.rank_names, op.output_indices, strict=True):
        if index.as_blocked() is not None:
            continue  # the cascade checks that the two ranks split this one
        off = index.as_offset()
        if off is None or off[0] != rank.lower() or off[1] not in (0, 1):
            raise OpVerifyException(
                op,
                f"{where}: output rank {rank} is not iterated: its index is '{index}', "
                f"expected '{rank.lower()}' (or '{rank.lower()}+1' for an iterative rank, or "
                f"'{rank.lower()}1*{rank}0+{rank.lower()}0' over the tiles of a split rank)",
            )
        if off[1] == 1:
            iterative.append(off[0])
    variables = op.output_variables()
    repeated = sorted({v for v in variables if variables.count(v) > 1})
    if repeated:
        raise OpVerifyException(op, f"{where}: output index variable {repeated[0]} is used twice")
    if len(iterative) > 1:
        raise OpVerifyException(
            op, f"{where}: more than one iterative rank ({', '.join(iterative)})"
        )
    # Accesses: one index per rank of the tensor read.
    for i, (value, indices) in enumerate(accesses):
        t = op.access_type(value)
        if len(indices) != len(t.rank_names):
            raise OpVerifyException(
                op,
                f"{where}: access {op.access_name(value)}{format_indices(indices)} has "
                f"{len(indices)} indices but {op.access_name(value)} has "
                f"{len(t.rank_names)} ranks [{', '.join(t.rank_names)}]",
            )
        for rank, index in zip(t.rank_names, indices, strict=True):
            var = index.as_variable()
            if var is not None and var.upper() != rank:
                raise OpVerifyException(
                    op,
                    f"{where}: access {op.access_name(value)}{format_indices(indices)} "
                    f"indexes rank {rank} with variable {var} of rank {var.upper()}",
                )
        arg_t = op.body.block.args[i].type if i < len(op.body.block.args) else None
        if arg_t != t.element_type:
            raise OpVerifyException(
                op,
                f"{where}: map argument {i} has type {arg_t} but "
                f"{op.access_name(value)} holds {t.element_type}",
            )
    if len(op.body.block.args) != len(accesses):
        raise OpVerifyException(
            op,
            f"{where}: map region takes {len(op.body.block.args)} arguments for "
            f"{len(accesses)} accesses",
        )
    last = op.body.block.last_op
    if not isinstance(last, YieldOp) or last.value.type != out_t.element_type:
        raise OpVerifyException(
            op, f"{where}: map region must end in einsum.yield of a {out_t.element_type}"
        )
    # Iteration and self reads.
    it = iterative[0] if iterative else None
    if selfs and it is None:
        raise OpVerifyException(
            op,
            f"{where}: reads its own output but has no iterative rank (write it as "
            f"{name}[..., r+1, ...])",
        )
    for s in selfs:
        assert it is not None
        expected = [
            IndexExpr.var(it) if ix.as_offset() == (it, 1) else ix for ix in op.output_indices
        ]
        if list(op.access.data[s].data) != expected:
            raise OpVerifyException(
                op,
                f"{where}: self read {name}{format_indices(op.access.data[s].data)} must "
                f"read the previous value {name}{format_indices(expected)}",
            )
    if it is not None and op.init is None:
        raise OpVerifyException(
            op,
            f"{where}: iterative rank {it.upper()} has no initial value "
            f"(declare {name}[{it}=0, ...] = value)",
        )
    if it is None and op.init is not None:
        raise OpVerifyException(op, f"{where}: has an initial value but no iterative rank")
    if op.init is not None and op.init.type != out_t.element_type:
        raise OpVerifyException(
            op,
            f"{where}: initial value has type {op.init.type}, expected {out_t.element_type}",
        )
    # Reductions: exactly the reduced variables, in order of first appearance.
    reduced = op.reduced_variables()
    ops = op.reduce.data
    outs = set(op.output_variables())
    for var, _ in ops:
        if var in outs:
            raise OpVerifyException(
                op,
                f"{where}: reduce operator on rank {var.upper()}, which is not reduced "
                "(it is an output rank)",
            )
        if var not in reduced:
            raise OpVerifyException(
                op, f"{where}: reduce operator on rank {var.upper()}, which no access uses"
            )
    listed = tuple(v for v, _ in ops)
    for var in reduced:
        if var not in listed:
            raise OpVerifyException(
                op, f"{where}: reduced rank {var.upper()} has no reduce operator"
            )
    if listed != reduced:
        raise OpVerifyException(
            op,
            f"{where}: reductions must be listed in order of first use: {', '.join(reduced)}",
        )
