"""Reading and writing pictures for `vm screenshot` (ops/screens.py): PPM and PNG, bounded."""
from __future__ import annotations

import struct
import zlib

import pytest

from virtops.ops.screens import Picture, parse_png, parse_ppm

PIXELS = bytes((x * 7 + y * 13 + c * 50) % 256 for y in range(5) for x in range(6) for c in range(3))


def test_ppm_to_png_and_back():
    picture = parse_ppm(b"P6\n# QEMU\n6 5\n255\n" + PIXELS)
    assert (picture.width, picture.height, picture.rgb) == (6, 5, PIXELS)
    assert parse_png(picture.png()) == picture


def test_png_row_filters_are_undone():
    # Each row filtered with another of PNG's filters (sub, up, average, Paeth), as encoders choose.
    stride, rows, previous = 18, [], bytes(18)
    for y, kind in enumerate([0, 1, 2, 3, 4]):
        line = PIXELS[y * stride:(y + 1) * stride]
        out = bytearray()
        for i, value in enumerate(line):
            left = line[i - 3] if i >= 3 else 0
            up, corner = previous[i], previous[i - 3] if i >= 3 else 0
            guess = left + up - corner
            paeth = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))[2]
            predictor = {0: 0, 1: left, 2: up, 3: (left + up) // 2, 4: paeth}[kind]
            out.append((value - predictor) & 0xFF)
        rows.append(bytes([kind]) + bytes(out))
        previous = line

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    assert parse_png(png).rgb == PIXELS


def test_thumbnails_keep_every_nth_pixel():
    picture = Picture(6, 5, PIXELS)
    small = picture.shrunk(3)
    assert (small.width, small.height) == (3, 3)
    assert small.rgb[:3] == PIXELS[:3] and small.rgb[3:6] == PIXELS[6:9]
    assert picture.shrunk(100) is picture


@pytest.mark.parametrize("data", [b"P5\n1 1\n255\n\0", b"P6\n99999 99999\n255\n", b"P6\n2 2\n65535\n", b"P6\n2 2\n255\n\0\0",
                                  b"P6\n1234567890 1\n255\n"])
def test_odd_ppms_are_refused(data):
    with pytest.raises(ValueError):
        parse_ppm(data)


def test_odd_pngs_are_refused():
    with pytest.raises(ValueError):
        parse_png(b"not a png")
    huge = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4s", 13, b"IHDR") + struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    with pytest.raises(ValueError):
        parse_png(huge + b"\0\0\0\0")
