"""Render an HTML file in headless Chromium, take a screenshot, and read the PNG back.

Used by ``test_html_report.py``; also a script:
``python -m tests.html_shot REPORT.html OUT.png [WIDTH HEIGHT]``.

Chromium runs in its own process group with a throw-away profile and is ended with its
whole group, on a timeout too, so no browser process is left behind. The PNG is decoded
here with zlib and numpy (Pillow is not a dependency of the lab).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--force-device-scale-factor=1",
    "--force-color-profile=srgb",
]
"""Chromium's flags: headless, runnable as root, no network of its own."""


def chromium() -> str | None:
    """The Chromium executable (Debian's ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """End Chromium's whole process group: SIGTERM, then SIGKILL after 5 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    # The group may outlive its leader (zygote, GPU or utility processes).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def screenshot(html: Path, out: Path, width: int = 1200, height: int = 2400,
               timeout: float = 40.0, profile_parent: Path | None = None) -> str:
    """Render ``html`` in headless Chromium and save a ``width`` × ``height`` px PNG.

    Args:
        html: the page (a local file).
        out: where the PNG goes (replaced).
        width: window width, px.
        height: window height, px (the screenshot shows this much of the page).
        timeout: seconds Chromium may take before its process group is killed.
        profile_parent: where the throw-away browser profile is made (default: the
            system's temporary directory); every Chromium process names it on its command
            line, so a caller can check none is left.

    Returns:
        Chromium's stderr (for a failure message).

    Raises:
        RuntimeError: Chromium is not installed, failed, timed out, or wrote no PNG.
    """
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="lab-report-chromium-", dir=profile_parent)
    out.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
         f"--window-size={width},{height}", html.resolve().as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        try:
            _out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"chromium took more than {timeout:g} s") from exc
        stderr = err.decode(errors="replace")
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"chromium exited {proc.returncode} without a screenshot: "
                               f"{stderr[-2000:]}")
        return stderr
    finally:
        _end_group(proc)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(profile, ignore_errors=True)


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> NDArray[np.uint8]:
    """Undo the PNG row filters (None, Sub, Up, Average, Paeth) of 8-bit samples."""
    stride = width * bpp
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: a running sum per channel, modulo 256
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint64).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            cur = line + prev
        else:  # Average and Paeth depend on the byte to the left: byte by byte
            cur_list = [0] * stride
            up = prev.tolist()
            src = line.tolist()
            for i in range(stride):
                left = cur_list[i - bpp] if i >= bpp else 0
                if kind == 3:
                    cur_list[i] = (src[i] + ((left + up[i]) >> 1)) & 0xFF
                else:
                    ul = up[i - bpp] if i >= bpp else 0
                    p = left + up[i] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else ul
                    cur_list[i] = (src[i] + pred) & 0xFF
            cur = np.array(cur_list, dtype=np.uint8)
        out[y] = cur
        prev = cur
    return out


def read_png(path: Path) -> NDArray[np.uint8]:
    """The pixels of an 8-bit RGB or RGBA, non-interlaced PNG as an array (height, width, 3).

    Raises:
        ValueError: not a PNG, or a kind this small decoder does not read.
    """
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat = 8, []
    width = height = bit_depth = color_type = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, bit_depth, color_type, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    channels = {2: 3, 6: 4}.get(color_type)
    if bit_depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: unsupported PNG (bit depth {bit_depth}, colour type {color_type}, "
                         f"interlace {interlace})")
    pixels = _unfilter(zlib.decompress(b"".join(idat)), width, height, channels)
    return pixels.reshape(height, width, channels)[:, :, :3]


def hex_rgb(color: str) -> tuple[int, int, int]:
    """``#1f77b4`` → ``(31, 119, 180)``."""
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def count_color(pixels: NDArray[np.uint8], color: str, tolerance: int = 10) -> int:
    """How many pixels are within ``tolerance`` (per channel, 0–255) of ``color``."""
    target = np.array(hex_rgb(color), dtype=np.int16)
    diff = np.abs(pixels.astype(np.int16) - target)
    return int(np.count_nonzero(diff.max(axis=2) <= tolerance))


def plot_bands(pixels: NDArray[np.uint8], background: str, min_pixels: int = 100,
               max_gap: int = 4, min_rows: int = 40) -> list[tuple[int, int]]:
    """Row ranges ``[top, bottom)`` of the screenshot that cross chart plot areas.

    A row belongs to a plot area when at least ``min_pixels`` of its pixels have exactly
    the plot areas' fill colour ``background``; ranges split only by grid lines (gaps of at
    most ``max_gap`` rows) are joined, and ranges shorter than ``min_rows`` are dropped.
    """
    target = np.array(hex_rgb(background), dtype=np.int16)
    hit = (np.abs(pixels.astype(np.int16) - target).max(axis=2) == 0).sum(axis=1) >= min_pixels
    bands: list[list[int]] = []
    for y in np.flatnonzero(hit).tolist():
        if bands and y - bands[-1][1] <= max_gap + 1:
            bands[-1][1] = y + 1
        else:
            bands.append([y, y + 1])
    return [(a, b) for a, b in bands if b - a >= min_rows]


if __name__ == "__main__":
    size = [int(v) for v in sys.argv[3:5]] or [1200, 2400]
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]), *size)
    shot = read_png(Path(sys.argv[2]))
    print(f"{sys.argv[2]}: {shot.shape[1]}×{shot.shape[0]} px")
