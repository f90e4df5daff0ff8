"""Reading a Timeloop v0.4 problem (`shape` and `instance`) into `Problem`."""

from __future__ import annotations

from einsum_opt.frontends.timeloop_fields import Field
from einsum_opt.frontends.timeloop_types import DataSpace, Problem, ProjectionTerm


def read_problem(root: Field) -> Problem:
    """Dimensions, their sizes, coefficient values and data spaces of `problem`."""
    shape = root.need("shape")
    instance = root.need("instance")
    if shape.has("flatten"):
        shape.get("flatten").fail("flattened dimensions are not supported")
    dimensions = tuple(_dimensions(shape.need("dimensions")))
    coefficients = _coefficients(shape.get("coefficients"), instance)
    bounds: dict[str, int] = {}
    for dim in dimensions:
        if not instance.has(dim):
            instance.fail(f"no size for dimension '{dim}'")
        bounds[dim] = instance.get(dim).integer(1)
    densities = instance.get("densities")
    if densities.mapping():
        densities.fail("densities (sparse workloads) are not supported")
    data_spaces: list[DataSpace] = []
    for field in shape.need("data_spaces").items():
        space = _data_space(field, dimensions, coefficients)
        if any(s.name == space.name for s in data_spaces):
            field.get("name").fail(f"a second data space called '{space.name}'")
        data_spaces.append(space)
    if not data_spaces:
        shape.get("data_spaces").fail("no data space")
    name = shape.get("name").text() if shape.has("name") else "problem"
    return Problem(name, dimensions, bounds, coefficients, tuple(data_spaces))


def _dimensions(field: Field) -> list[str]:
    dimensions: list[str] = []
    for item in field.items():
        dim = item.text()
        if len(dim) != 1:
            # Timeloop reads permutations one character per dimension.
            item.fail(f"dimension names must be one character, found '{dim}'")
        if dim in dimensions:
            item.fail(f"dimension '{dim}' is listed twice")
        dimensions.append(dim)
    if not dimensions:
        field.fail("no dimension")
    return dimensions


def _coefficients(field: Field, instance: Field) -> dict[str, int]:
    """Coefficient values: the instance's value, else the declared default."""
    values: dict[str, int] = {}
    for item in field.items():
        name = item.need("name").text()
        value = item.need("default").integer(None)
        if instance.has(name):
            value = instance.get(name).integer(None)
        values[name] = value
    return values


def _data_space(
    field: Field, dimensions: tuple[str, ...], coefficients: dict[str, int]
) -> DataSpace:
    name = field.need("name").text()
    read_write = field.get("read_write").flag() if field.has("read_write") else False
    projection_field = field.need("projection")
    projection: list[tuple[ProjectionTerm, ...]] = []
    for rank in projection_field.items():
        if isinstance(rank.value, str):  # the short form: a list of dimension names
            projection.append((_term(rank, [rank.value], dimensions, coefficients),))
            continue
        terms = tuple(_term(term, term.names(), dimensions, coefficients) for term in rank.items())
        if not terms:
            rank.fail("empty projection expression")
        projection.append(terms)
    if not projection:
        projection_field.fail("empty projection")
    return DataSpace(name, tuple(projection), read_write)


def _term(
    field: Field, parts: list[str], dimensions: tuple[str, ...], coefficients: dict[str, int]
) -> ProjectionTerm:
    if len(parts) not in (1, 2):
        field.fail("a term is [dimension] or [dimension, coefficient]")
    if parts[0] not in dimensions:
        field.fail(f"unknown dimension '{parts[0]}'")
    if len(parts) == 1:
        return ProjectionTerm(parts[0], None)
    if parts[1] not in coefficients:
        field.fail(f"unknown coefficient '{parts[1]}'")
    return ProjectionTerm(parts[0], parts[1])
