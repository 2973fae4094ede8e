"""Drawing helpers shared by the benchmark generators (PIL masks + numpy colour arithmetic).

Images are drawn at ``SUPERSAMPLE`` times their final size as float RGB arrays, so shapes
get smooth (box-filtered) edges when reduced; noise is added at the final size; the
result is encoded as PNG bytes (lossless and byte-for-byte deterministic, so dataset
fingerprints can hash them).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

#: Drawing resolution factor: shapes are drawn this many times larger, then reduced.
SUPERSAMPLE = 4

Colour = tuple[float, float, float]


def canvas(size: int, colour: Sequence[float]) -> np.ndarray:
    """A ``[size * SUPERSAMPLE]^2 x 3`` float image filled with ``colour`` (0-255)."""
    side = size * SUPERSAMPLE
    return np.broadcast_to(np.asarray(colour, dtype=np.float64), (side, side, 3)).copy()


def _mask(side: int, paint) -> np.ndarray:
    img = Image.new("L", (side, side), 0)
    paint(ImageDraw.Draw(img))
    return np.asarray(img, dtype=np.float64) / 255.0


def polygon_mask(side: int, points: Sequence[tuple[float, float]]) -> np.ndarray:
    """A ``[side, side]`` mask (0/1) of a filled polygon, coordinates in drawing pixels."""
    return _mask(side, lambda d: d.polygon([tuple(p) for p in points], fill=255))


def ellipse_mask(side: int, box: Sequence[float]) -> np.ndarray:
    """A mask of a filled ellipse inside ``box = (x0, y0, x1, y1)``."""
    return _mask(side, lambda d: d.ellipse(list(box), fill=255))


def rectangle_mask(side: int, box: Sequence[float]) -> np.ndarray:
    """A mask of a filled rectangle ``box = (x0, y0, x1, y1)``."""
    return _mask(side, lambda d: d.rectangle(list(box), fill=255))


def blob_points(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    irregularity: float,
    *,
    aspect: float = 1.0,
    n: int = 18,
) -> list[tuple[float, float]]:
    """Points of a closed blob: a circle whose radius is jittered by ``irregularity``.

    The jitter is smoothed over neighbours so that the border is lumpy, not spiky.
    """
    raw = rng.uniform(-1.0, 1.0, size=n)
    smooth = (np.roll(raw, 1) + 2 * raw + np.roll(raw, -1)) / 4
    radii = radius * (1.0 + irregularity * smooth)
    angles = np.linspace(0.0, 2 * math.pi, n, endpoint=False) + rng.uniform(0, 2 * math.pi)
    cx, cy = centre
    return [
        (cx + r * math.cos(a) * aspect, cy + r * math.sin(a) / aspect)
        for r, a in zip(radii, angles, strict=True)
    ]


def paint(img: np.ndarray, mask: np.ndarray, delta: Sequence[float]) -> None:
    """Add ``delta`` (RGB, may be negative) to ``img`` wherever ``mask`` is set (in place)."""
    img += mask[..., None] * np.asarray(delta, dtype=np.float64)


def fill(img: np.ndarray, mask: np.ndarray, colour: Sequence[float]) -> None:
    """Paint ``colour`` over ``img`` with ``mask`` as opacity (in place)."""
    m = mask[..., None]
    img *= 1.0 - m
    img += m * np.asarray(colour, dtype=np.float64)


def rotate_hue(delta: Sequence[float], degrees: float) -> np.ndarray:
    """Rotate an RGB vector about the grey axis (1, 1, 1) by ``degrees``.

    A hue rotation that keeps the vector's length, i.e. its contrast: applied to a
    colour *offset* it shifts the hue of a lesion without making it easier or harder
    to see (Rodrigues' rotation formula).
    """
    v = np.asarray(delta, dtype=np.float64)
    k = np.ones(3) / math.sqrt(3.0)
    t = math.radians(degrees)
    return v * math.cos(t) + np.cross(k, v) * math.sin(t) + k * (k @ v) * (1 - math.cos(t))


def jitter_colour(rng: np.random.Generator, colour: Sequence[float], amount: float) -> Colour:
    """``colour`` plus a uniform brightness jitter and a smaller per-channel jitter."""
    base = np.asarray(colour, dtype=np.float64)
    out = base + rng.uniform(-amount, amount) + rng.uniform(-amount / 3, amount / 3, size=3)
    return tuple(float(x) for x in np.clip(out, 0, 255))  # type: ignore[return-value]


def finish(img: np.ndarray, size: int, rng: np.random.Generator, noise: float) -> bytes:
    """Reduce to ``size`` (box filter), add Gaussian noise (std ``noise`` x 255), PNG-encode."""
    small = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    if noise > 0:
        small = small + rng.normal(0.0, noise * 255.0, size=small.shape)
    pixels = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


__all__ = [
    "SUPERSAMPLE",
    "blob_points",
    "canvas",
    "ellipse_mask",
    "fill",
    "finish",
    "jitter_colour",
    "paint",
    "polygon_mask",
    "rectangle_mask",
    "rotate_hue",
]
