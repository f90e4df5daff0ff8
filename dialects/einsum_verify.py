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
                        op,  # type: ignore[arg-type]
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
        _check_mapping(einsum, sizes)


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
