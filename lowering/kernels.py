"""Kernels of a cascade of loop nests: the groups its mapping names (`kernel = NAME`).

Kernels run one after another, each bounded by its own compute and memory time, so a tensor
one kernel produces and another reads must go through DRAM: homed in DRAM by its producer and
read from DRAM by its consumer. A kernel may only read what earlier kernels produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.lowering.data_spaces import view_source


def split_kernels(
    nests: Sequence[NestOp], views: Mapping[str, tuple[str, str]]
) -> dict[str, list[NestOp]]:
    """Kernel name -> its nests, kernels in order of their first nest; PassFailedException
    when a tensor crosses kernels on chip or a kernel reads from a later one."""
    kernels: dict[str, list[NestOp]] = {}
    for nest in nests:
        kernels.setdefault(nest.kernel_name, []).append(nest)
    if len(kernels) == 1:
        return kernels
    if "" in kernels:
        unnamed = kernels[""][0]
        raise OpPassFailedException(
            unnamed,
            f"lower-to-dataflow: {unnamed.describe()} has no kernel, but other nests of its "
            "cascade do: name a kernel in every mapping of the cascade, or in none"
        )
    order = list(kernels)
    producers = {n.tensor_name: n for n in nests}
    for nest in nests:
        levels = nest.level_names()
        for i, (value, _) in enumerate(nest.accesses()):
            if value is None:
                continue
            tensor, _ = view_source(views, nest.access_name(value), levels[i])
            producer = producers.get(tensor)
            if producer is None or producer.kernel_name == nest.kernel_name:
                continue
            where = (
                f"lower-to-dataflow: {nest.describe()} (kernel {nest.kernel_name}) reads "
                f"{tensor} of kernel {producer.kernel_name}"
            )
            if order.index(producer.kernel_name) > order.index(nest.kernel_name):
                raise OpPassFailedException(nest, f"{where}, which runs later")
            stored = producer.level_names()[-1]
            if stored != "DRAM" or levels[i] != "DRAM":
                raise OpPassFailedException(
                    nest,
                    f"{where} from {levels[i]} (stored in {stored}): tensors cross kernels "
                    "through DRAM"
                )
    return kernels
