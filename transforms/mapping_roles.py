"""What the mapping recipes (`map-fusemax`, `map-flat`, `map-unfused`) need to know of an
architecture, read from it rather than assumed: its 2D and 1D arrays, the array side a row tile
spans, the root (DRAM), the global buffer, the staging level between the arrays, and the level
each array's spatial loops fan out from."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.ir import Operation
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.hardware import REGISTERS, Architecture, ArchitectureError
from einsum_opt.hardware.attached import choose_architecture


@dataclass(frozen=True)
class Roles:
    """The parts of an architecture a recipe maps onto."""

    arch: Architecture
    matrix: str
    """The 2D array (contractions, key tiles)."""
    vector: str
    """The 1D array (per-row work)."""
    root: str
    buffer: str
    staging: str | None
    capacity: int | None
    """The global buffer's capacity in bytes (None: unbounded)."""

    def fanout_level(self, unit: str) -> str:
        """The level whose instances fan out to `unit`'s PEs (where its spatial loops sit)."""
        chain = self.arch.chain(unit)
        pes = self.arch.unit(unit).mesh
        for index in reversed(range(len(chain))):
            if chain[index].name == REGISTERS:
                continue
            inner = chain[index + 1].mesh if index + 1 < len(chain) else pes
            if inner != chain[index].mesh:
                return chain[index].name
        return chain[-1].name

    def side(self) -> int:
        """PEs along axis 0 of both arrays: how many rows (queries) one tile spans."""
        return min(self.arch.unit(self.matrix).shape[0], self.arch.unit(self.vector).shape[0])

    def key_side(self) -> int:
        """PEs along axis 1 of the 2D array (keys of one tile)."""
        shape = self.arch.unit(self.matrix).shape
        return shape[1] if len(shape) > 1 else 1


def roles(pass_name: str, option: str | None, op: Operation) -> Roles:
    """The roles of the architecture a pass is given (else the module's, else fusemax)."""
    try:
        arch, _ = choose_architecture(option, op)
    except ArchitectureError as error:
        raise PassFailedException(f"{pass_name}: {error}") from None
    two = arch.units_with_axes(2)
    one = arch.units_with_axes(1)
    if not two or not one:
        raise PassFailedException(
            f"{pass_name}: architecture '{arch.name}' needs a 2D and a 1D array (its units: "
            + ", ".join(f"{n} {list(u.shape)}" for n, u in arch.units.items())
            + "); map it with map-search or apply-mapping"
        )
    buffer = arch.buffer_level()
    return Roles(
        arch,
        two[0],
        one[0],
        arch.root,
        buffer,
        arch.staging_level(),
        arch.capacity_bytes(buffer),
    )


def largest_divisor_at_most(size: int, bound: int) -> int:
    """The largest divisor of `size` that is at most `bound` (1 at least)."""
    return max(d for d in divisors(size) if d <= bound)


TRIAL_PRIMES_UP_TO = 1 << 16
"""Trial division goes this far; a cofactor left above it counts as one prime (it is rarely
split further in a rank size, and every divisor listed is still a divisor)."""


def divisors(size: int) -> list[int]:
    """The divisors of `size`, ascending, from its factorization: the time depends on how
    many divisors there are, never on `size` itself (2^64 tokens have 65)."""
    factors: dict[int, int] = {}
    rest = size
    candidate = 2
    while candidate * candidate <= rest and candidate <= TRIAL_PRIMES_UP_TO:
        while rest % candidate == 0:
            factors[candidate] = factors.get(candidate, 0) + 1
            rest //= candidate
        candidate += 1 if candidate == 2 else 2
    if rest > 1:
        factors[rest] = factors.get(rest, 0) + 1
    found = [1]
    for prime, power in factors.items():
        found = [d * prime**k for d in found for k in range(power + 1)]
    return sorted(found)
