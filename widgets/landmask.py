"""Is this point land or sea? A 0.5 degree world land mask, for drawing maps.

The mask is derived once from real geographic data by `scripts/derive_landmask.py`
(which documents its source and format) and shipped as `widgets/data/landmask.bin`,
a few KB. Reading it needs only the standard library: no numpy at run time.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from operator import itemgetter

_MAGIC = b"LMSK"
_HEADER = struct.Struct(">4sHH")


@dataclass(frozen=True, slots=True)
class LandMask:
    """A land/sea bit grid: rows from latitude +90 down to -90, columns east from -180."""

    width: int
    height: int
    bits: bytes  # row-major, most significant bit first

    def is_land(self, lat: float, lon: float) -> bool:
        row = min(max(int((90.0 - lat) * self.height / 180.0), 0), self.height - 1)
        # Longitude wraps: 180 and -180 are the same meridian.
        col = int((lon + 180.0) * self.width / 360.0) % self.width
        index = row * self.width + col
        return bool(self.bits[index >> 3] >> (7 - (index & 7)) & 1)

    def grid(self, lats: Sequence[float], lons: Sequence[float]) -> list[tuple[int, ...]]:
        """is_land (as 1 or 0) at every point of a grid, a tuple a latitude: what a map
        draws at once. The same answers as is_land point by point, ~20x faster (a map
        of 200 columns asks 90,000 points, and its first frame waits for them)."""
        cells = _unpacked(self)
        cols = [int((lon + 180.0) * self.width / 360.0) % self.width for lon in lons]
        rows: list[tuple[int, ...]] = []
        for lat in lats:
            row = min(max(int((90.0 - lat) * self.height / 180.0), 0), self.height - 1)
            offset = row * self.width
            pick = itemgetter(*(offset + col for col in cols))
            picked = pick(cells)
            rows.append(picked if len(cols) > 1 else (picked,))
        return rows


# Each byte's eight bits as eight 0/1 bytes, most significant first.
_BYTE_BITS = [bytes((value >> (7 - bit)) & 1 for bit in range(8)) for value in range(256)]


@cache
def _unpacked(mask: LandMask) -> bytes:
    """One 0/1 byte per cell (259,200 bytes for the shipped mask), made once."""
    return b"".join(_BYTE_BITS[value] for value in mask.bits)


def parse(data: bytes) -> LandMask:
    """Decode the file format written by scripts/derive_landmask.py."""
    magic, width, height = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("not a land mask: bad magic")
    bits = zlib.decompress(data[_HEADER.size :])
    if len(bits) * 8 < width * height:
        raise ValueError(f"land mask truncated: {len(bits)} bytes for {width}x{height}")
    return LandMask(width, height, bits)


@cache
def land_mask() -> LandMask:
    """The shipped mask, read once per process."""
    return parse(files("noc_widgets").joinpath("data", "landmask.bin").read_bytes())


def is_land(lat: float, lon: float) -> bool:
    """True if the 0.5 degree cell holding (lat, lon) is mostly land (lakes count as land)."""
    return land_mask().is_land(lat, lon)
