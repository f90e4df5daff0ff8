"""A slow, literal model of timeloop-model's nest analysis, to check the closed form against.

It walks the loop nest the way Timeloop's NestAnalysis does (Timeloop's defaults: temporal and
first-element spatial extrapolation, reset of residuals on a change of stride, exact multicast
detection, link transfers between neighbours), with point sets as boxes and set differences
as lists of disjoint boxes, then collapses the per-loop statistics into per-level reads, fills
and updates as Timeloop's tiling step does (partition sizes, parent access shares, masking of
bypassed levels, first-read elision). Its cost grows with the iterations it samples and the
spatial instances it compares: use it on small nests only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from einsum_opt.costmodel.nest_spec import NestSpec, validate

Box = tuple[tuple[int, int], ...]
"""Per tensor dimension [low, high) (high exclusive)."""
PointSet = tuple[Box, ...]
"""A union of disjoint boxes, in the order the subtraction produced them."""


def _box_size(box: Box) -> int:
    return math.prod(high - low for low, high in box)


def _subtract(a: Box, b: Box) -> list[Box]:
    if any(bh <= al or ah <= bl for (al, ah), (bl, bh) in zip(a, b, strict=True)):
        return [a]
    pieces: list[Box] = []
    middle = list(a)
    for rank, ((ml, mh), (bl, bh)) in enumerate(zip(a, b, strict=True)):
        if ml < bl:
            pieces.append(tuple(middle[:rank]) + ((ml, bl),) + tuple(middle[rank + 1 :]))
            ml = bl
        if bh < mh:
            pieces.append(tuple(middle[:rank]) + ((bh, mh),) + tuple(middle[rank + 1 :]))
            mh = bh
        middle[rank] = (ml, mh)
    return pieces


def _size(points: PointSet) -> int:
    return sum(_box_size(box) for box in points)


def _translate(points: PointSet, vector: tuple[int, ...]) -> PointSet:
    return tuple(
        tuple((low + v, high + v) for (low, high), v in zip(box, vector, strict=True))
        for box in points
    )


def _same(a: PointSet, b: PointSet) -> bool:
    return len(a) == len(b) and all(x in b for x in a)


@dataclass
class _LoopInfo:
    dim: str
    extent: int
    axis: str | None
    level: int  # storage level, 0 = innermost (Timeloop's numbering)
    boundary: bool = False
    master: bool = False


@dataclass
class _State:
    last: dict[str, Box | None]
    translation: dict[str, tuple[int, ...] | None]
    max_size: dict[str, int]
    accesses: dict[str, dict[tuple[int, int], float]]
    link_transfers: dict[str, int]
    prev_spatial: dict[int, dict[str, PointSet]] = field(default_factory=dict)


@dataclass
class OracleTensor:
    """Per-instance counts of one tensor at one level, as Timeloop prints them."""

    reads: int
    fills: int
    updates: int
    utilized_capacity: int
    partition_size: int
    utilized_instances: int
    link_transfers: float


@dataclass
class OracleResult:
    computes: int
    compute_cycles: int
    utilized_compute_instances: int
    levels: dict[str, dict[str, OracleTensor]]
    link_transfers_used: bool


class _Walk:
    def __init__(self, spec: NestSpec, link_transfers: bool, stationary_fix: bool):
        validate(spec)
        self.spec = spec
        self.link = link_transfers
        self.stationary_fix = stationary_fix
        self.tensors = {t.name: t for t in spec.tensors}
        n = len(spec.levels)
        loops: list[_LoopInfo] = []
        for outer_index in range(n - 1, -1, -1):
            level = spec.levels[outer_index]
            tl_level = n - 1 - outer_index
            spatial = [lp for lp in level.loops if lp.axis is not None and lp.extent > 1]
            temporal = [lp for lp in level.loops if lp.axis is None and lp.extent > 1]
            for lp in reversed(spatial):
                loops.append(_LoopInfo(lp.dim, lp.extent, lp.axis, tl_level))
            if not temporal:
                loops.append(_LoopInfo(next(iter(spec.dims)), 1, None, tl_level))
            for lp in reversed(temporal):
                loops.append(_LoopInfo(lp.dim, lp.extent, None, tl_level))
            loops[-1].boundary = True
        for i, lp in enumerate(loops):
            lp.master = lp.axis is not None and (i + 1 == len(loops) or loops[i + 1].axis is None)
        self.loops = loops
        dims = list(spec.dims)
        self.strides: list[dict[str, int]] = []
        self.mold_high: list[dict[str, int]] = []
        scale = dict.fromkeys(dims, 1)
        for lp in loops:
            self.strides.append(dict(scale))
            scale[lp.dim] *= lp.extent
            self.mold_high.append({d: scale[d] - 1 for d in dims})
        self.utilized: list[int] = []
        for i in range(len(loops)):
            self.utilized.append(
                math.prod(lp.extent for lp in loops[i + 1 :] if lp.axis is not None)
            )
        self.fanout: list[int] = []
        self.fanout_xy: list[tuple[int, int]] = []
        for i, lp in enumerate(loops):
            if lp.axis is None or not lp.master:
                self.fanout.append(1 if lp.axis is None else 0)
                self.fanout_xy.append((1, 1))
                continue
            j, fx, fy = i, 1, 1
            while j >= 0 and loops[j].axis is not None:
                if loops[j].axis == "X":
                    fx *= loops[j].extent
                else:
                    fy *= loops[j].extent
                j -= 1
            self.fanout.append(fx * fy)
            self.fanout_xy.append((fx, fy))
        self.physical: list[tuple[int, int]] = []
        for outer_index, level in enumerate(spec.levels):
            if outer_index + 1 < n:
                inner = spec.levels[outer_index + 1]
                ix, iy = inner.mesh_x, inner.mesh_y
            else:
                ix, iy = spec.compute_mesh_x, spec.compute_mesh_y
            self.physical.append((ix // level.mesh_x, iy // level.mesh_y))
        self.physical.reverse()  # Timeloop numbering
        self.indices = [0] * len(loops)
        self.transform = dict.fromkeys(dims, 0)
        self.epochs = 1
        self.space_stamp: list[int] = []
        self.states: list[dict[tuple[int, ...], _State]] = [{} for _ in loops]
        self.compute: dict[tuple[int, ...], float] = {}
        self.used_links = False

    # -- point sets --------------------------------------------------------------------------

    def _project(self, low: dict[str, int], high: dict[str, int]) -> dict[str, Box]:
        boxes: dict[str, Box] = {}
        for name, tensor in self.tensors.items():
            box = []
            for terms in tensor.projection:
                lo = hi = 0
                for term in terms:
                    a, b = term.coefficient * low[term.dim], term.coefficient * high[term.dim]
                    lo += min(a, b)
                    hi += max(a, b)
                box.append((lo, hi + 1))
            boxes[name] = tuple(box)
        return boxes

    def _working_set(self, i: int) -> dict[str, Box]:
        high = {d: self.transform[d] + self.mold_high[i][d] for d in self.transform}
        return self._project(dict(self.transform), high)

    def _new_state(self) -> _State:
        names = list(self.tensors)
        return _State(
            last=dict.fromkeys(names),
            translation=dict.fromkeys(names),
            max_size=dict.fromkeys(names, 0),
            accesses={n: {} for n in names},
            link_transfers=dict.fromkeys(names, 0),
        )

    def _state(self, i: int) -> _State:
        key = tuple(self.space_stamp[:-1])
        if key not in self.states[i]:
            self.states[i][key] = self._new_state()
        return self.states[i][key]

    # -- the walk ----------------------------------------------------------------------------

    def deltas(self, i: int) -> dict[str, PointSet]:
        lp = self.loops[i]
        if lp.boundary:
            self.space_stamp.append(0)
        state = self._state(i)
        if lp.axis is not None:
            self._spatial(i)
        else:
            self._temporal(i, state)
        current = self._working_set(i)
        if lp.boundary or lp.master:
            for name, box in current.items():
                state.max_size[name] = max(state.max_size[name], _box_size(box))
        delta: dict[str, PointSet] = {}
        for name, box in current.items():
            delta[name] = self._save_and_subtract(state, name, box)
        if lp.boundary:
            self.space_stamp.pop()
        return delta

    def _save_and_subtract(self, state: _State, name: str, box: Box) -> PointSet:
        prev = state.last[name]
        translation = None
        if prev is not None:
            translation = tuple(c[0] - p[0] for c, p in zip(box, prev, strict=True))
        prev_translation = state.translation[name]
        if not self.stationary_fix:
            # Timeloop before PR #297 (January 2025): any first translation is recorded, a zero
            # one included, and a different one later discards the residual.
            state.last[name] = box
            if prev is None:
                return (box,)
            if prev_translation is None:
                state.translation[name] = translation
                return tuple(_subtract(box, prev))
            if translation == prev_translation:
                return tuple(_subtract(box, prev))
            state.translation[name] = None
            return (box,)
        if translation is None or not any(translation):
            result = (box,) if prev is None else tuple(_subtract(box, prev))
            state.last[name] = box
            return result
        if prev_translation is None:
            state.translation[name] = translation
            state.last[name] = box
            return tuple(_subtract(box, prev))
        if translation == prev_translation:
            state.last[name] = box
            return tuple(_subtract(box, prev))
        state.last[name] = box
        state.translation[name] = None
        return (box,)

    def _temporal(self, i: int, state: _State) -> None:
        lp = self.loops[i]
        n = lp.extent
        if i == 0:
            key = tuple(self.space_stamp[:-1])
            self.compute[key] = self.compute.get(key, 0) + n * self.epochs
            for name in self.tensors:
                slot = state.accesses[name]
                slot[(1, 1)] = slot.get((1, 1), 0) + n * self.epochs
            return
        collected: list[tuple[dict[str, PointSet], int]] = []
        scale = self.strides[i][lp.dim]
        saved = self.transform[lp.dim]
        self.indices[i] = 0
        collected.append((self.deltas(i - 1), 1))
        self.transform[lp.dim] += scale
        self.indices[i] += 1
        if n >= 2:
            virtual = n - 1
            saved_epochs = self.epochs
            self.epochs *= virtual
            collected.append((self.deltas(i - 1), virtual))
            self.epochs = saved_epochs
            self.transform[lp.dim] += scale * virtual
            self.indices[i] += virtual
        self.transform[lp.dim] = saved
        if self.loops[i - 1].boundary:
            for name in self.tensors:
                total = sum(_size(d[name]) * w for d, w in collected)
                slot = state.accesses[name]
                slot[(1, 1)] = slot.get((1, 1), 0) + total * self.epochs

    def _spatial(self, i: int) -> None:
        spatial: dict[int, dict[str, PointSet]] = {}
        self._fill(i, spatial, 0, 0, i)
        state = self._state(i)
        names = list(self.tensors)
        without = self._multicast(spatial, {n: set(spatial) for n in names})
        chosen = without
        if self.link:
            unaccounted = {n: set(spatial) for n in names}
            transfers = self._link_transfers(i, spatial, unaccounted, state)
            with_links = self._multicast(spatial, unaccounted)
            chosen = {}
            for name in names:
                total_without = sum(without[name].values())
                total_with = sum(with_links[name].values())
                if total_with < total_without:
                    state.link_transfers[name] += transfers[name]
                    chosen[name] = with_links[name]
                    self.used_links = True
                else:
                    chosen[name] = without[name]
        for name in names:
            slot = state.accesses[name]
            for key, value in chosen[name].items():
                slot[key] = slot.get(key, 0) + value

    def _multicast(
        self, spatial: dict[int, dict[str, PointSet]], unaccounted: dict[str, set[int]]
    ) -> dict[str, dict[tuple[int, int], float]]:
        result: dict[str, dict[tuple[int, int], float]] = {}
        keys = sorted(spatial)
        for name in self.tensors:
            remaining = set(unaccounted[name])
            per_multicast: dict[int, list[float]] = {}
            for pos, key in enumerate(keys):
                if key not in remaining:
                    continue
                remaining.discard(key)
                matches = 1
                delta = spatial[key][name]
                for other in keys[pos + 1 :]:
                    if other in remaining and _same(delta, spatial[other][name]):
                        remaining.discard(other)
                        matches += 1
                size = _size(delta)
                if size > 0:
                    entry = per_multicast.setdefault(matches, [0.0, 0])
                    entry[0] += size * self.epochs
                    entry[1] += 1
            result[name] = {(m, int(s)): a for m, (a, s) in per_multicast.items()}
        return result

    def _link_transfers(
        self,
        i: int,
        spatial: dict[int, dict[str, PointSet]],
        unaccounted: dict[str, set[int]],
        state: _State,
    ) -> dict[str, int]:
        px, py = self.physical[self.loops[i].level]
        fx, fy = self.fanout_xy[i]
        h_size, v_size = max(px, fx), max(py, fy)
        prev = state.prev_spatial
        reuse: dict[int, set[str]] = {}

        def compare(cur: int, old: int) -> None:
            if cur not in spatial or old not in prev:
                return
            for name in self.tensors:
                delta = spatial[cur][name]
                if _size(delta) and _same(delta, prev[old][name]):
                    reuse.setdefault(cur, set()).add(name)

        if v_size > 1:
            for h in range(h_size):
                for v in range(1, v_size):
                    compare(v * h_size + h, (v - 1) * h_size + h)
                for v in range(v_size - 1):
                    compare(v * h_size + h, (v + 1) * h_size + h)
        if h_size > 1:
            for v in range(v_size):
                for h in range(1, h_size):
                    compare(v * h_size + h, v * h_size + h - 1)
                for h in range(h_size - 1):
                    compare(v * h_size + h, v * h_size + h + 1)
        transfers = dict.fromkeys(self.tensors, 0)
        for key, names in reuse.items():
            for name in names:
                transfers[name] += _size(spatial[key][name]) * self.epochs
                unaccounted[name].discard(key)
        state.prev_spatial = dict(spatial)
        return transfers

    def _fill(
        self,
        i: int,
        spatial: dict[int, dict[str, PointSet]],
        base: int,
        extrapolation_stride: int,
        extrapolation_level: int,
    ) -> None:
        lp = self.loops[i]
        end = lp.extent
        base *= end
        if i == 0:
            for idx in range(end):
                self.indices[0] = idx
                point = dict.fromkeys(self.transform, 0)
                for level, loop in enumerate(self.loops):
                    point[loop.dim] += self.strides[level][loop.dim] * self.indices[level]
                boxes = self._project(point, point)
                spatial[base + idx] = {n: (b,) for n, b in boxes.items()}
                self.space_stamp[-1] = base + idx
                key = tuple(self.space_stamp)
                self.compute[key] = self.compute.get(key, 0) + self.epochs
            return
        scale = self.strides[i][lp.dim]
        saved = self.transform[lp.dim]
        runs = 0
        if self.loops[i - 1].axis is not None:
            for idx in range(end):
                self.indices[i] = idx
                stride, level = extrapolation_stride * end, extrapolation_level
                if runs >= 1:
                    stride, level = 1, i
                self._fill(i - 1, spatial, base + idx, stride, level)
                self.transform[lp.dim] += scale
                runs += 1
        else:
            start = 0
            if extrapolation_stride == 0:
                self.indices[i] = 0
                self.space_stamp[-1] = base
                spatial[base] = self.deltas(i - 1)
                self.transform[lp.dim] += scale
                start = 1
                extrapolation_stride, extrapolation_level = 1, i
            else:
                extrapolation_stride *= end
            if start < end:
                translation = self._translation(extrapolation_level)
                for idx in range(start, end):
                    source = spatial[base + idx - extrapolation_stride]
                    spatial[base + idx] = {
                        n: _translate(d, translation[n]) for n, d in source.items()
                    }
        self.transform[lp.dim] = saved

    def _translation(self, i: int) -> dict[str, tuple[int, ...]]:
        dim = self.loops[i].dim
        first = self._working_set(i)
        self.transform[dim] += self.strides[i][dim]
        second = self._working_set(i)
        self.transform[dim] -= self.strides[i][dim]
        return {
            n: tuple(b[0] - a[0] for a, b in zip(first[n], second[n], strict=True)) for n in first
        }


def _round(value: float) -> int:
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def run_oracle(
    spec: NestSpec, link_transfers: bool = True, stationary_fix: bool = False
) -> OracleResult:
    """Per-level, per-tensor counts of `spec` by walking the nest as Timeloop does
    (`stationary_fix`: as Timeloop does since PR #297, January 2025)."""
    walk = _Walk(spec, link_transfers, stationary_fix)
    walk.deltas(len(walk.loops) - 1)
    loops = walk.loops
    n_levels = len(spec.levels)
    names = list(walk.tensors)
    # Collect the valid loops (temporal or master spatial) and their averaged statistics.
    tiles: dict[str, list[dict[str, object]]] = {n: [] for n in names}
    for i, lp in enumerate(loops):
        if lp.axis is not None and not lp.master:
            continue
        states = list(walk.states[i].values())
        for name in names:
            accesses: dict[tuple[int, int], float] = {}
            for state in states:
                for key, value in state.accesses[name].items():
                    accesses[key] = accesses.get(key, 0) + value
            count = len(states)
            tiles[name].append(
                {
                    "size": sum(s.max_size[name] for s in states) // count,
                    "accesses": {k: v / count for k, v in accesses.items()},
                    "links": sum(s.link_transfers[name] for s in states) // count,
                    "replication": walk.utilized[i],
                    "fanout": walk.fanout[i],
                    "boundary": lp.boundary,
                    "master": lp.master,
                }
            )
    levels: dict[str, dict[str, OracleTensor]] = {}
    for name in names:
        collapsed = _collapse(tiles[name], n_levels)
        tensor = walk.tensors[name]
        keep = [name in spec.levels[n_levels - 1 - k].keep for k in range(n_levels)]
        result = _finish(collapsed, keep, tensor.read_write)
        for k, counts in enumerate(result):
            levels.setdefault(spec.levels[n_levels - 1 - k].name, {})[name] = counts
    computes_per_instance = sum(walk.compute.values()) / len(walk.compute)
    valid = [i for i, lp in enumerate(loops) if lp.axis is None or lp.master]
    first = valid[0]
    replication = walk.utilized[first] * walk.fanout[first]
    computes = int(computes_per_instance * replication)
    utilized = math.prod(lp.extent for lp in loops if lp.axis is not None)
    ordered = {spec.levels[k].name: levels[spec.levels[k].name] for k in range(n_levels)}
    return OracleResult(
        computes=computes,
        compute_cycles=math.ceil(computes / utilized),
        utilized_compute_instances=utilized,
        levels=ordered,
        link_transfers_used=walk.used_links,
    )


def _collapse(tiles: list[dict[str, object]], n_levels: int) -> list[dict[str, float]]:
    """Timeloop's CollapseDataMovementNest up to (not including) the read/fill/update split."""
    levels: list[dict[str, float]] = []
    pos = 0
    while pos < len(tiles):
        end = pos
        while not tiles[end]["boundary"] and end < len(tiles) - 1:
            end += 1
        inner, outer = tiles[pos], tiles[end]
        accesses = dict(inner["accesses"])  # type: ignore[call-overload]
        level = {
            "size": float(outer["size"]),  # type: ignore[arg-type]
            "accesses": accesses,
            "links": float(inner["links"]),  # type: ignore[arg-type]
            "replication": float(outer["replication"]),  # type: ignore[arg-type]
            "fanout": float(inner["fanout"]),  # type: ignore[arg-type]
            "pfd_master": inner["master"],
            "inner_size": float(inner["size"]),  # type: ignore[arg-type]
        }
        levels.append(level)  # type: ignore[arg-type]
        pos = end + 1
    assert len(levels) == n_levels
    return levels  # type: ignore[return-value]


def _total(accesses: Iterable[tuple[tuple[int, int], float]]) -> float:
    return sum(v for _, v in accesses)


def _finish(levels: list[dict], keep: list[bool], read_write: bool) -> list[OracleTensor]:
    n = len(levels)
    # Partition sizes.
    partition = [0] * n
    partition[n - 1] = int(levels[n - 1]["size"])
    for cur in range(n - 2, -1, -1):
        outer = levels[cur + 1]
        pfd = outer["inner_size"] if outer["pfd_master"] else levels[cur]["size"]
        partition[cur] = int(partition[cur + 1] * levels[cur]["size"]) // int(pfd)
    # Parent access shares.
    share = [0.0] * n
    for cur in range(n - 1):
        outer = levels[cur + 1]
        share[cur] = sum(v * m / outer["fanout"] for (m, _), v in outer["accesses"].items())
    content = [_total(level["accesses"].items()) for level in levels]
    sizes = [level["size"] for level in levels]
    links = [level["links"] for level in levels]
    # Masking.
    for cur in range(n):
        if keep[cur] or sizes[cur] == 0:
            continue
        outer = cur + 1
        while outer < n and sizes[outer] == 0:
            outer += 1
        if outer == n:
            sizes[cur] = 0
            break
        weighted = sum(v * m for (m, _), v in levels[outer]["accesses"].items())
        factor = content[cur] * levels[outer]["fanout"] / weighted
        levels[outer]["accesses"] = {k: v * factor for k, v in levels[outer]["accesses"].items()}
        links[outer] = 0
        content[outer] = _total(levels[outer]["accesses"].items())
        sizes[cur] = 0
    top = max(k for k in range(n) if keep[k])
    for cur in range(n - 1, top, -1):
        sizes[cur] = 0
        content[cur] = 0
        links[cur] = 0
    share[top] = 0
    peer_accesses = [0.0] * n
    peer_fills = [0.0] * n
    for cur in range(n - 1, 0, -1):
        if links[cur]:
            per = links[cur] / levels[cur - 1]["replication"]
            peer_accesses[cur - 1] += per
            peer_fills[cur - 1] += per
    result: list[OracleTensor] = []
    for cur in range(n):
        replication = int(levels[cur]["replication"])
        if not keep[cur] or sizes[cur] == 0:
            result.append(OracleTensor(0, 0, 0, 0, partition[cur], replication, 0))
            continue
        if read_write:
            updates = _round(content[cur])
            reads = _round(content[cur] + peer_accesses[cur] - partition[cur])
            if cur == top:
                fills = _round(share[cur] + peer_fills[cur])
            else:
                fills = _round(share[cur] + peer_fills[cur] - partition[cur])
        else:
            updates = 0
            reads = _round(content[cur] + peer_accesses[cur])
            fills = int(share[cur] + peer_fills[cur])
        result.append(
            OracleTensor(
                reads, fills, updates, int(sizes[cur]), partition[cur], replication, links[cur]
            )
        )
    return result
