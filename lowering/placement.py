"""Where a nest's loops and tensors sit on its unit's chain of storage levels.

A nest runs on a unit; the unit's *chain* is the path of storage levels from the root (DRAM)
to its PEs' registers (`Architecture.chain`). Placing a nest decides, Timeloop's way:

- **keep sets**: the levels that hold each data space, outermost (its home) first: the
  nest's explicit chain (`DRAM>PE`), else its home and every level below it that keeps
  tensors by default (a staging level such as FuseMax's RF holds only what is homed there);
  a cascade input or output is always kept at the root too (it comes from / goes to memory).
- **loop levels**: every loop sits at one level. A temporal loop at level L iterates over L's
  tile; a spatial loop at L fans out to the instances of the next level. The nest's own `at`
  levels are taken as they are; otherwise spatial loops go to the innermost level with room to
  fan out along their axis (a spatial loop larger than that is split: the excess becomes a
  temporal loop just outside it), and temporal loops are placed innermost first at the
  innermost level whose tiles of the tensors it keeps still fit its capacity, moving outward
  when they do not. A loop that indexes a tensor homed below the root stays at or below that
  home (the tensor lives there: a 32 MiB input homed in a 16 MB buffer overflows rather than
  streams), unless the loop encloses that tensor's whole life in the kernel (the kernel's
  shared outer loops: a running value lives for one repetition of b, h, p2).

Level names in nests may be roles when the architecture has no level of that name: `DRAM` is
the root, `GLB` the global buffer, `RF` the staging level, `PE` the unit's registers (or its
innermost level).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from xdsl.utils.exceptions import PassFailedException

from einsum_opt.costmodel.nest_spec import LevelSpec, Loop, NestSpec, TensorSpec, Term
from einsum_opt.dialects.locations import pass_failure
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import REGISTERS, Architecture, ChainLevel
from einsum_opt.lowering.data_spaces import DataSpace, tile_words

AXES = ("X", "Y")
"""Array axis 0 is Timeloop's X, axis 1 its Y."""


def _fail(message: str, nest: NestOp | None) -> PassFailedException:
    return pass_failure(f"lower-to-dataflow: {message}", nest)


def resolve_level(
    arch: Architecture, unit: str, name: str, where: str, nest: NestOp | None = None
) -> int:
    """The index in `unit`'s chain of the level a nest (`nest`, when it is IR) names (or the
    role it names)."""
    chain = arch.chain(unit)
    names = [c.name for c in chain]
    if name in names:
        return names.index(name)
    role: str | None = None
    if name == "DRAM":
        role = arch.root
    elif name == "GLB":
        role = arch.buffer_level()
    elif name == "RF":
        role = arch.staging_level()
    elif name == REGISTERS:
        role = names[-1]
    if role is not None and role in names:
        return names.index(role)
    raise _fail(
        f"{where} names level '{name}', which unit {unit}'s chain "
        f"({', '.join(names)}) in architecture '{arch.name}' does not have",
        nest,
    )


@dataclass(frozen=True)
class PlacedNest:
    """A nest placed on its unit's chain: the analysis input and what reports need."""

    spec: NestSpec
    labels: tuple[str, ...]
    """The report name of each level of the chain (`GLB`, `pe2d.PE`)."""
    spaces: tuple[DataSpace, ...]


def keep_sets(
    arch: Architecture,
    nest: NestOp,
    spaces: Sequence[DataSpace],
    in_memory: set[str],
) -> list[list[int]]:
    """For each data space, the chain indices that keep it (outermost first)."""
    chain = arch.chain(nest.unit_name)
    out: list[list[int]] = []
    for space in spaces:
        where = f"{nest.describe()}: {space.name}"
        if space.kept is not None:
            kept = [resolve_level(arch, nest.unit_name, n, where, nest) for n in space.kept]
            if kept != sorted(set(kept)):
                raise _fail(f"{where} is kept in levels out of chain order or twice", nest)
        else:
            home = resolve_level(arch, nest.unit_name, space.home, where, nest)
            kept = [home] + [i for i in range(home + 1, len(chain)) if chain[i].level.default_keep]
        if space.name in in_memory and 0 not in kept:
            kept = [0, *kept]
        out.append(kept)
    return out


def home_levels(arch: Architecture, nest: NestOp, spaces: Sequence[DataSpace]) -> list[int]:
    """For each data space, the chain index of the level the nest homes it in: the first of
    an exact keep set, else its home (a cascade input homed in the GLB is also kept at the
    root, but its tile must fit the GLB)."""
    where = nest.describe()
    return [
        resolve_level(
            arch,
            nest.unit_name,
            space.kept[0] if space.kept else space.home,
            f"{where}: {space.name}",
            nest,
        )
        for space in spaces
    ]


def _fanout(chain: Sequence[ChainLevel], index: int, unit_mesh: tuple[int, int]) -> list[int]:
    """How many instances of the next level (or PEs) one instance of level `index` feeds."""
    inner = chain[index + 1].mesh if index + 1 < len(chain) else unit_mesh
    outer = chain[index].mesh
    return [inner[0] // outer[0], inner[1] // outer[1]]


def _split_spatial(
    loops: list[tuple[str, int, int | None, int | None]],
    chain: Sequence[ChainLevel],
    unit_mesh: tuple[int, int],
    nest: NestOp,
) -> list[tuple[str, int, int | None, int | None]]:
    """Place unplaced spatial loops on the innermost level with room along their axis,
    splitting one that is too large into a temporal part and a spatial part."""
    where = nest.describe()
    room = {i: _fanout(chain, i, unit_mesh) for i in range(len(chain))}
    for _var, extent, axis, level in loops:
        if axis is not None and level is not None:
            room[level][axis] //= max(1, extent)
    out: list[tuple[str, int, int | None, int | None]] = []
    for var, extent, axis, level in reversed(loops):
        if axis is None or level is not None:
            out.append((var, extent, axis, level))
            continue
        if axis > 1:
            raise _fail(
                f"{where}: loop {var} is spatial on axis {axis}; arrays have axes 0, 1", nest
            )
        fitting = [i for i in reversed(range(len(chain))) if room[i][axis] >= extent]
        if fitting:
            room[fitting[0]][axis] //= extent
            out.append((var, extent, axis, fitting[0]))
            continue
        best = max(range(len(chain)), key=lambda i: (room[i][axis], i))
        side = room[best][axis]
        if side <= 1 or extent % side:
            raise _fail(
                f"{where}: spatial loop {var} = {extent} does not fit the unit's axis {axis} "
                f"(room for {side}) and does not split evenly over it",
                nest,
            )
        room[best][axis] = 1
        out.append((var, side, axis, best))
        out.append((f"{var}.fold", extent // side, None, None))
    out.reverse()
    return out


def place_nest(
    arch: Architecture,
    nest: NestOp,
    spaces: Sequence[DataSpace],
    in_memory: set[str],
    exempt: Mapping[str, set[str]],
) -> PlacedNest:
    """Place `nest` (see the module docstring). `in_memory`: the cascade's inputs and outputs
    (kept at the root); `exempt`: per tensor, the loops enclosing its whole life."""
    unit = arch.unit(nest.unit_name)
    chain = arch.chain(nest.unit_name)
    where = nest.describe()
    keeps = keep_sets(arch, nest, spaces, in_memory)
    loops: list[tuple[str, int, int | None, int | None]] = []
    for loop in nest.loop_list():
        level = (
            resolve_level(
                arch, nest.unit_name, loop.level_name, f"{where}: loop {loop.var.data}", nest
            )
            if loop.level_name
            else None
        )
        loops.append((loop.var.data, loop.extent.data, loop.spatial_axis, level))
    loops = _split_spatial(loops, chain, unit.mesh, nest)
    spaces = _with_folds(spaces, loops)
    if any(level is None for *_, level in loops):
        homes = home_levels(arch, nest, spaces)
        loops = _place_temporal(arch, chain, loops, spaces, keeps, homes, exempt)
    levels: list[list[Loop]] = [[] for _ in chain]
    deepest = 0
    for var, extent, axis, level in loops:
        assert level is not None
        if level < deepest:
            raise _fail(
                f"{where}: loop {var} at {chain[level].name} is inside a loop at "
                f"{chain[deepest].name} (loops go outermost level first)",
                nest,
            )
        deepest = level
        levels[level].append(Loop(var, extent, None if axis is None else AXES[axis]))
    for i, block in enumerate(levels):
        first_spatial = next((k for k, lp in enumerate(block) if lp.axis is not None), len(block))
        if any(lp.axis is None for lp in block[first_spatial:]):
            raise _fail(
                f"{where}: at {chain[i].name}, a temporal loop is inside a spatial loop (a "
                "level's spatial loops fan out to the level below: they come last)",
                nest,
            )
    tensors = tuple(
        TensorSpec(
            f"{s.name}@{k}" if any(o.name == s.name for o in spaces[:k]) else s.name,
            tuple(tuple(Term(c, v) for c, v in dim) for dim in s.projection),
            s.output,
        )
        for k, s in enumerate(spaces)
    )
    level_specs = tuple(
        LevelSpec(
            c.name if c.name != REGISTERS else c.label,
            c.mesh[0],
            c.mesh[1],
            frozenset(t.name for t, kept in zip(tensors, keeps, strict=True) if i in kept),
            tuple(levels[i]),
        )
        for i, c in enumerate(chain)
    )
    dims = {var: extent for var, extent, _, _ in loops}
    spec = NestSpec(dims, tensors, level_specs, unit.mesh[0], unit.mesh[1])
    return PlacedNest(spec, tuple(c.label for c in chain), tuple(spaces))


def _with_folds(
    spaces: Sequence[DataSpace], loops: Sequence[tuple[str, int, int | None, int | None]]
) -> list[DataSpace]:
    """The data spaces indexed over split spatial loops too: `p0` split into `p0.fold` (outer)
    and `p0` reads `p0.fold * side + p0` wherever it read `p0`."""
    sides = {var: extent for var, extent, axis, _ in loops if axis is not None}
    folds = {var.removesuffix(".fold"): var for var, *_ in loops if var.endswith(".fold")}
    if not folds:
        return list(spaces)
    out = []
    for space in spaces:
        projection = tuple(
            tuple(
                term
                for c, v in dim
                for term in (((c, v), (c * sides[v], folds[v])) if v in folds else ((c, v),))
            )
            for dim in space.projection
        )
        out.append(replace(space, projection=projection))
    return out


def _place_temporal(
    arch: Architecture,
    chain: Sequence[ChainLevel],
    loops: list[tuple[str, int, int | None, int | None]],
    spaces: Sequence[DataSpace],
    keeps: Sequence[Sequence[int]],
    homes: Sequence[int],
    exempt: Mapping[str, set[str]],
) -> list[tuple[str, int, int | None, int | None]]:
    """Place the temporal loops innermost first, each at the deepest level where every tile
    that then includes it fits (see the module docstring)."""
    capacity = [_capacity_words(arch, c) for c in chain]
    # The shallowest level a loop may take: below every placed (spatial) loop outside it.
    floors: list[int] = []
    floor = 0
    for _, _, axis, level in loops:
        floors.append(floor)
        if level is not None:
            floor = max(floor, level + (1 if axis is not None else 0))
    placed: list[tuple[str, int, int]] = []  # (variable, extent, level) of inner loops
    current = len(chain) - 1
    out: list[tuple[str, int, int | None, int | None]] = []
    for index in reversed(range(len(loops))):
        var, extent, axis, level = loops[index]
        if level is None:
            level = _deepest_fitting(
                var, extent, current, floors[index], placed, spaces, keeps, homes, capacity, exempt
            )
        current = min(current, level)
        placed.append((var, extent, level))
        out.append((var, extent, axis, level))
    out.reverse()
    return out


def _deepest_fitting(
    var: str,
    extent: int,
    deepest: int,
    shallowest: int,
    placed: Sequence[tuple[str, int, int]],
    spaces: Sequence[DataSpace],
    keeps: Sequence[Sequence[int]],
    homes: Sequence[int],
    capacity: Sequence[float | None],
    exempt: Mapping[str, set[str]],
) -> int:
    """The deepest level in [shallowest, deepest] at which loop `var` keeps every tile that
    includes it within capacity; it never rises above the home of a tensor it indexes (that
    the loop does not enclose the life of)."""
    lowest_home = max(
        (
            home
            for space, home in zip(spaces, homes, strict=True)
            if home > 0 and var in space.variables() and var not in exempt.get(space.name, ())
        ),
        default=0,
    )
    for level in range(deepest, shallowest - 1, -1):
        if _fits(var, extent, level, placed, spaces, keeps, capacity):
            return level
        if level <= lowest_home:
            return level  # the tensor lives here: the loop stays and the level overflows
    return shallowest


def _fits(
    var: str,
    extent: int,
    level: int,
    placed: Sequence[tuple[str, int, int]],
    spaces: Sequence[DataSpace],
    keeps: Sequence[Sequence[int]],
    capacity: Sequence[float | None],
) -> bool:
    """Whether, with loop `var` at `level`, the tiles of each level at or above it (which then
    include the loop) fit that level's capacity together."""
    for k in range(level + 1):
        limit = capacity[k]
        if limit is None:
            continue
        extents = {v: e for v, e, lv in placed if lv >= k}
        extents[var] = extent
        used = sum(
            tile_words(space, extents)
            for space, kept in zip(spaces, keeps, strict=True)
            if k in kept
        )
        if used > limit:
            return False
    return True


def _capacity_words(arch: Architecture, level: ChainLevel) -> float | None:
    size = level.level.capacity_in_values(arch.word_bytes)
    if size is None:
        return None
    return size / level.level.multiple_buffering
