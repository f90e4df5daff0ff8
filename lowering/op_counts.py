"""Operation counts of one loop-nest invocation, read from its map region.

Every scalar op of the map region is one operation of a kind the cost model knows
(`costmodel.architecture.OP_KINDS`): `mulf` is a `mul`, `addf`/`subf`/`negf` an `add`,
`maximumf`/`minimumf` (and `abs`, a comparison) a `max`, `divf` a `div`, `math.exp`/`log`/`sqrt`
themselves. A reduction adds one operation per invocation and per reduce operator (`max` for
LM, `add` for SLD): the PE combines its new value with the partial result it holds. A multiply
whose product feeds a `+` reduction is fused with it into one `mac` (QK, SLNV).
Constants, `einsum.size` and the yield are free, and so are casts between element types
(`arith.extf`, `truncf`, `sitofp`, ...: an f16 Q multiplied with an f32 K): the architecture
describes one datapath word (`word_bytes`), which every value is moved and operated on in
(traffic counts it for every tensor alike), so a conversion changes how a value is written,
not what the PEs compute; its cost is the operation it feeds.
"""

from __future__ import annotations

from xdsl.ir import Operation

from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.dialects.loopnest import NestOp

OP_KIND: dict[str, str] = {
    "arith.mulf": "mul",
    "arith.muli": "mul",
    "arith.addf": "add",
    "arith.addi": "add",
    "arith.subf": "add",
    "arith.subi": "add",
    "arith.negf": "add",
    "arith.maximumf": "max",
    "arith.minimumf": "max",
    "arith.maxsi": "max",
    "arith.minsi": "max",
    "math.absf": "max",
    "math.absi": "max",
    "arith.divf": "div",
    "arith.divsi": "div",
    "math.exp": "exp",
    "math.log": "log",
    "math.sqrt": "sqrt",
}
"""Scalar op name -> the operation kind it costs."""

CAST_OPS: frozenset[str] = frozenset(
    {
        "arith.extf",
        "arith.truncf",
        "arith.extsi",
        "arith.extui",
        "arith.trunci",
        "arith.sitofp",
        "arith.uitofp",
        "arith.fptosi",
        "arith.fptoui",
        "arith.bitcast",
        "arith.index_cast",
    }
)
"""Conversions between element types: no operation of their own (see the module docstring)."""

FREE_OPS: frozenset[str] = frozenset({"arith.constant", "einsum.size", "einsum.yield"}) | CAST_OPS
"""Scalar ops that cost nothing."""

REDUCE_KIND: dict[str, str] = {"add": "add", "mul": "mul", "max": "max", "min": "max"}
"""Reduce operator -> the operation kind that combines two partial results."""


def _kind(op: Operation, where: str) -> str | None:
    if op.name in FREE_OPS:
        return None
    kind = OP_KIND.get(op.name)
    if kind is None:
        raise OpPassFailedException(
            op,
            f"lower-to-dataflow: {where}: no operation kind for '{op.name}' in the map region"
        )
    return kind


def count_ops(nest: NestOp) -> dict[str, int]:
    """Operation kind -> count for one invocation of `nest` on one PE (zero counts omitted)."""
    where = nest.describe()
    counts: dict[str, int] = {}
    for op in nest.body.block.ops:
        kind = _kind(op, where)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    reducers = dict.fromkeys(REDUCE_KIND[operator] for _, operator in nest.reduce.data)
    last = nest.body.block.last_op
    yielded = last.operands[0].owner if last is not None and last.operands else None
    for kind in reducers:
        if (
            kind == "add"
            and isinstance(yielded, Operation)
            and OP_KIND.get(yielded.name) == "mul"
            and counts.get("mul", 0) > 0
        ):
            counts["mul"] -= 1
            counts["mac"] = counts.get("mac", 0) + 1
        else:
            counts[kind] = counts.get(kind, 0) + 1
    return {kind: n for kind, n in counts.items() if n > 0}


def is_copy(nest: NestOp) -> bool:
    """Whether `nest` only copies its single access (no operation, no reduction; a cast to
    another element type is no operation)."""
    last = nest.body.block.last_op
    if len(nest.access.data) != 1 or nest.reduce.data or last is None or len(last.operands) != 1:
        return False
    value = last.operands[0]
    while isinstance(value.owner, Operation) and value.owner.name in CAST_OPS:
        value = value.owner.operands[0]
    return value in nest.body.block.args
