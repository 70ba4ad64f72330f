"""Is this point land or sea? A 0.5 degree world land mask, for drawing maps.

The mask is derived once from real geographic data by `scripts/derive_landmask.py`
(which documents its source and format) and shipped as `widgets/data/landmask.bin`,
a few KB. Reading it needs only the standard library: no numpy at run time.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

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
