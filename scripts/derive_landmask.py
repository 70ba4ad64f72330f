"""Derive the region map's land mask, `widgets/data/landmask.bin`, once.

Where the data comes from: the `global-land-mask` package (MIT licence,
https://github.com/toddkarin/global-land-mask), which ships a 30 arc-second
(~1 km) land/ocean mask extracted from NOAA's GLOBE digital elevation model
(https://www.ngdc.noaa.gov/mgg/topo/globe.html). It is a development tool only:
noc never imports it at run time, it only reads the small file this script writes.

What it writes: a 720 x 360 grid of 0.5 degree cells, rows from latitude +90
down to -90, columns from longitude -180 eastwards. Each cell is sampled on an
8 x 8 grid of points; it is land when at least a quarter of them are, so small
countries and islands (Singapore, Hong Kong, Malta) survive the downsampling
without coastlines bloating. The bits are packed eight to a byte, most
significant bit first, row-major, and zlib-compressed behind an 8-byte header
(`LMSK`, then width and height as big-endian unsigned 16-bit integers).

Regenerate (only needed to change the resolution or the threshold):

    pip install global-land-mask numpy
    python scripts/derive_landmask.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from global_land_mask import globe

CELL_DEGREES = 0.5
WIDTH = int(360 / CELL_DEGREES)
HEIGHT = int(180 / CELL_DEGREES)
SUBSAMPLES = 8  # per cell side: 64 points per 0.5 degree cell, ~6 km apart
LAND_FRACTION = 0.25
MAGIC = b"LMSK"

OUTPUT = Path(__file__).resolve().parent.parent / "widgets" / "data" / "landmask.bin"


def derive() -> np.ndarray:
    """The land mask as a HEIGHT x WIDTH boolean array."""
    step = CELL_DEGREES / SUBSAMPLES
    # Sub-sample centres across the whole width; one band of cells at a time keeps
    # memory low (the source mask alone is ~1 GB once loaded).
    lons = -180.0 + step * (np.arange(WIDTH * SUBSAMPLES) + 0.5)
    mask = np.empty((HEIGHT, WIDTH), dtype=bool)
    for row in range(HEIGHT):
        top = 90.0 - row * CELL_DEGREES
        lats = top - step * (np.arange(SUBSAMPLES) + 0.5)
        lat_grid, lon_grid = np.meshgrid(lats, lons, indexing="ij")
        land = globe.is_land(lat_grid, lon_grid)
        fraction = land.reshape(SUBSAMPLES, WIDTH, SUBSAMPLES).mean(axis=(0, 2))
        mask[row] = fraction >= LAND_FRACTION
    return mask


def main() -> None:
    mask = derive()
    header = MAGIC + struct.pack(">HH", WIDTH, HEIGHT)
    payload = zlib.compress(np.packbits(mask, axis=None).tobytes(), 9)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(header + payload)
    print(f"wrote {OUTPUT} ({len(header) + len(payload)} bytes, {mask.mean():.1%} land)")


if __name__ == "__main__":
    main()
