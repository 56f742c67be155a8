"""Peak memory of reading one 20,000 x 20,000 PNG (a few hundred KB): bounded and not.

Each measurement runs in a fresh process and reports its peak resident memory
(ru_maxrss): the baseline of importing TensorFlow, then `why_undecodable` on
the file with the default `data.max_image_pixels` (refused from the header) and
with a bound above the image (decoded, as every decode was before the bound).

    .venv/bin/python -m bench.image_bound [--side 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

MEASURE = """
import json, resource, sys, time
import imgclf
from imgclf.imagedata.decode import why_undecodable
with open(sys.argv[1], "rb") as f:
    encoded = f.read()
bound = int(sys.argv[2])
started = time.perf_counter()
why = why_undecodable(encoded, bound) if bound else "not read"
print(json.dumps({
    "seconds": time.perf_counter() - started,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "outcome": why or "decoded",
}))
"""


def grey_png(path: str, side: int) -> None:
    """A valid PNG of side x side black pixels, compressed row by row: never held whole."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + checksum

    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data))
        f.write(chunk(b"IEND", b""))


def measure(path: str, bound: int) -> dict:
    child = subprocess.run(
        [sys.executable, "-c", MEASURE, path, str(bound)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    from imgclf.settings.data import DataConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=20_000)
    args = parser.parse_args()
    default = DataConfig.model_fields["max_image_pixels"].default
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "huge.png")
        grey_png(path, args.side)
        print(f"{args.side} x {args.side} PNG: {os.path.getsize(path) / 1024:.0f} KB")
        for label, bound in (
            ("TensorFlow imported, file read", 0),
            (f"bounded (max_image_pixels {default:,})", default),
            ("unbounded (a bound above the image)", args.side * args.side),
        ):
            result = measure(path, bound)
            print(
                f"  {label:42} peak {result['peak_mb']:7.0f} MB  "
                f"{result['seconds']:6.2f} s  {result['outcome']}"
            )


if __name__ == "__main__":
    main()
