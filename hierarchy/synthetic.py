"""Generated trees of realistic shape and codes, for tests, benchmarks and simulations.

Codes follow the administrative division pattern: a province has 2 digits, a
city adds 2, a county 2, a township 3 (14, 1401, 140105, 140105001). Real
Shanxi has 11 cities, ~117 counties and ~1,400 townships, so
``generate_tree(11, 10, 13)`` (1,552 nodes) is a whole province; the country
generator adds a root above 31 provinces (~45,000 nodes).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from hierarchy.csv_import import COLUMNS
from hierarchy.tree import DEFAULT_LEVELS, Node, Tree

COUNTRY_LEVELS: tuple[str, ...] = ("country", "province", *DEFAULT_LEVELS[1:])


def _check(name: str, value: int, limit: int) -> None:
    if type(value) is not int or not 0 <= value <= limit:
        raise ValueError(f"{name} must be an integer in 0..{limit}")


def _province(code: str, cities: int, counties: int, townships: int) -> Iterator[Node]:
    for c in range(1, cities + 1):
        city = f"{code}{c:02d}"
        yield Node(id=city, name=f"第{c}市", level="city", parent=code)
        for k in range(1, counties + 1):
            county = f"{city}{k:02d}"
            yield Node(id=county, name=f"第{c}市第{k}县", level="county", parent=city)
            for t in range(1, townships + 1):
                yield Node(
                    id=f"{county}{t:03d}",
                    name=f"第{c}市第{k}县第{t}镇",
                    level="township",
                    parent=county,
                )


def province_nodes(
    cities: int, counties_per_city: int, townships_per_county: int, *, code: str = "14"
) -> list[Node]:
    """A province rooted at ``code``: root first, every parent before its children."""
    _check("cities", cities, 99)
    _check("counties_per_city", counties_per_city, 99)
    _check("townships_per_county", townships_per_county, 999)
    root = Node(id=code, name=f"{code}省", level="province", parent=None)
    return [root, *_province(code, cities, counties_per_city, townships_per_county)]


def country_nodes(
    provinces: int = 31,
    cities_per_province: int = 10,
    counties_per_city: int = 9,
    townships_per_county: int = 15,
) -> list[Node]:
    """A country (root ``CN``) over ``provinces`` provinces; the defaults give 44,982 nodes."""
    _check("provinces", provinces, 89)
    _check("cities_per_province", cities_per_province, 99)
    _check("counties_per_city", counties_per_city, 99)
    _check("townships_per_county", townships_per_county, 999)
    out = [Node(id="CN", name="全国", level="country", parent=None)]
    for p in range(provinces):
        code = f"{11 + p:02d}"
        out.append(Node(id=code, name=f"{code}省", level="province", parent="CN"))
        out.extend(_province(code, cities_per_province, counties_per_city, townships_per_county))
    return out


def to_csv(nodes: list[Node], *, bom: bool = False) -> str:
    """CSV text in the import format (with Excel's byte-order mark if ``bom``)."""
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows((n.id, n.name, n.parent or "", n.level) for n in nodes)
    return out.getvalue()


def generate_tree(
    cities: int, counties_per_city: int, townships_per_county: int, *, code: str = "14"
) -> Tree:
    """A province as a :class:`Tree` (see :func:`generate_csv` for its file)."""
    return Tree(province_nodes(cities, counties_per_city, townships_per_county, code=code))


def generate_csv(
    cities: int,
    counties_per_city: int,
    townships_per_county: int,
    *,
    code: str = "14",
    bom: bool = False,
) -> str:
    """A province as CSV text, as an office would export it."""
    nodes = province_nodes(cities, counties_per_city, townships_per_county, code=code)
    return to_csv(nodes, bom=bom)


def generate_country_csv(bom: bool = False, **shape: int) -> str:
    """A country as CSV text; import it with ``levels=COUNTRY_LEVELS``."""
    return to_csv(country_nodes(**shape), bom=bom)
