"""The embedded default dataset: a deterministic synthetic ReID set in Market-1501 layout.

Why it exists (DESIGN.md "Data"): the product must run a study out of the box, without
downloading anything, on a CPU in minutes, and the per-camera metrics of the APRA paper
(query-mAP and gallery-mAP per camera) must show a real imbalance. So the generator draws
simple people whose identity lives in stable attributes (shirt colour and pattern, trousers,
skin, hair, body shape, bag, shoes) and films them with cameras that differ in nuisances:
illumination (gain, gamma), colour cast, blur, background, person scale (distance) and noise.
One camera (``SyntheticSpec.hard_camera``) is deliberately hard: dark, strongly cast, blurred,
far away. :data:`CAMERA_NUISANCES` is the table for the default spec; ``meta.json`` records
the table actually used.

Layout written (see :mod:`trainables.data.market`)::

    <out>/bounding_box_train/0001_c1s1_000000_00.jpg     train identities
    <out>/query/0101_c2s1_000003_00.jpg                  test identities, 1 image per camera
    <out>/bounding_box_test/0101_c4s1_000007_01.jpg      test identities + 0000_ distractors
                                                         + -1_ junk
    <out>/masks/<folder>/<stem>.png                      person masks, 0/255, pixel-aligned
    <out>/meta.json                                      version, spec, counts, camera table

Determinism: every image is drawn from its own ``numpy.random.Generator`` seeded from
``(seed, split, pid, camera, index)``, so the same spec gives byte-identical files (with the
same OpenCV build). Generation writes into a temporary sibling folder that is renamed into
place at the end: a crash never leaves half a dataset, and of two processes generating the
same dataset at once the loser discards its copy. Change :data:`SYNTHETIC_VERSION` whenever
the rendering changes, so cached copies are regenerated.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from trainables.data.errors import DatasetError
from trainables.data.market import SPLIT_FOLDERS

__all__ = [
    "CAMERA_NUISANCES",
    "HARD_CAMERA_NUISANCE",
    "NORMAL_CAMERA_NUISANCES",
    "SYNTHETIC_VERSION",
    "CameraNuisance",
    "SyntheticSpec",
    "camera_nuisances",
    "default_cache_dir",
    "ensure_synthetic_dataset",
    "generate_synthetic_dataset",
    "spec_hash",
]

SYNTHETIC_VERSION = 1

_CACHE_ENV = "REID_ORCH_CACHE"
_META_NAME = "meta.json"
_JPEG_QUALITY = 95
# Render geometry is defined at this height; blur sigmas scale with the real height.
_REFERENCE_HEIGHT = 128


# --------------------------------------------------------------------------------------------
# Spec and camera table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. The same spec always gives the same files.

    Each identity appears in ``cameras_per_id`` of the ``num_cameras`` cameras (a random subset
    drawn from its seed), with ``images_per_camera`` images per camera in train and gallery and
    one per camera in query. Distractors (pid 0) and junk (pid -1) go to the gallery only.
    ``hard_camera`` (1-based, 0 for none) gets :data:`HARD_CAMERA_NUISANCE`.
    Invalid values raise :class:`DatasetError` (a ``ValueError``) stating the rule.
    """

    num_train_ids: int = 100
    num_test_ids: int = 100
    num_cameras: int = 6
    cameras_per_id: int = 4
    images_per_camera: int = 2
    num_distractors: int = 40
    num_junk: int = 10
    height: int = 128
    width: int = 64
    seed: int = 0
    hard_camera: int = 6

    def __post_init__(self) -> None:
        positive = ("num_train_ids", "num_test_ids", "num_cameras", "images_per_camera")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DatasetError(f"SyntheticSpec.{name} must be an integer >= 1, got {value!r}")
        for name in ("num_distractors", "num_junk", "seed", "hard_camera"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise DatasetError(f"SyntheticSpec.{name} must be an integer >= 0, got {value!r}")
        if self.num_train_ids + self.num_test_ids > 9999:
            raise DatasetError(
                "SyntheticSpec: num_train_ids + num_test_ids must be <= 9999 (4-digit Market "
                f"pids), got {self.num_train_ids + self.num_test_ids}"
            )
        if not 2 <= self.cameras_per_id <= self.num_cameras:
            raise DatasetError(
                "SyntheticSpec.cameras_per_id must satisfy 2 <= cameras_per_id <= num_cameras "
                "(a query needs a gallery match in another camera), got "
                f"cameras_per_id={self.cameras_per_id!r}, num_cameras={self.num_cameras}"
            )
        if self.hard_camera > self.num_cameras:
            raise DatasetError(
                "SyntheticSpec.hard_camera must be 0 (none) or a camera id in 1..num_cameras, "
                f"got {self.hard_camera} with num_cameras={self.num_cameras}"
            )
        if self.height < 32 or self.width < 16:
            raise DatasetError(f"SyntheticSpec: height >= 32 and width >= 16 are needed, got {self.height}x{self.width}")


@dataclass(frozen=True)
class CameraNuisance:
    """How one camera degrades what it films. Applied in this order after drawing.

    ``gain``, ``cast`` (RGB channel gains) and ``gamma`` (>1 darkens mid-tones) set the
    illumination; ``blur_sigma`` is a Gaussian sigma in pixels at 128 px image height (scaled
    with the real height); ``noise_sigma`` is additive Gaussian noise on the 0-255 scale;
    ``person_scale`` is the person's height over the image height (distance); ``background``
    names a background style and ``background_rgb`` its base colour.
    """

    description: str
    gain: float
    gamma: float
    cast: tuple[float, float, float]
    blur_sigma: float
    noise_sigma: float
    person_scale: float
    background: str
    background_rgb: tuple[int, int, int]


#: Profiles of ordinary cameras, indexed by camera id - 1 (cycled beyond six cameras).
NORMAL_CAMERA_NUISANCES: tuple[CameraNuisance, ...] = (
    CameraNuisance("daylight street, neutral and sharp", 1.00, 1.00, (1.00, 1.00, 1.00), 0.0, 2.0, 0.92, "pavement", (150, 150, 146)),
    CameraNuisance("indoor hall, warm tungsten cast", 0.95, 1.05, (1.10, 1.00, 0.84), 0.5, 3.0, 0.88, "tiles", (205, 190, 165)),
    CameraNuisance("park in shade, cool cast", 0.88, 1.10, (0.90, 0.98, 1.12), 0.6, 3.0, 0.86, "foliage", (85, 125, 70)),
    CameraNuisance("sunlit wall, overexposed", 1.18, 0.85, (1.00, 1.00, 0.97), 0.7, 2.0, 0.95, "bricks", (150, 88, 66)),
    CameraNuisance("far shop front, greenish fluorescent", 1.00, 1.00, (0.94, 1.07, 0.95), 0.9, 4.0, 0.76, "shopfront", (95, 115, 140)),
    CameraNuisance("overcast plaza, slightly soft", 0.95, 1.00, (1.00, 1.00, 1.03), 0.8, 3.0, 0.84, "pavement", (118, 118, 124)),
)

#: The deliberately weak camera: night, sodium-lamp orange cast, heavy blur, far away, noisy.
HARD_CAMERA_NUISANCE = CameraNuisance(
    "night street under sodium lamps: dark, strong orange cast, heavy blur, far, noisy",
    0.62,
    1.30,
    (1.30, 0.95, 0.60),
    1.6,
    5.0,
    0.64,
    "night",
    (52, 48, 58),
)


def camera_nuisances(spec: SyntheticSpec) -> dict[int, CameraNuisance]:
    """The camera table of a spec: camera id (1-based) -> its nuisances."""
    table = {}
    for cam in range(1, spec.num_cameras + 1):
        if cam == spec.hard_camera:
            table[cam] = HARD_CAMERA_NUISANCE
        else:
            table[cam] = NORMAL_CAMERA_NUISANCES[(cam - 1) % len(NORMAL_CAMERA_NUISANCES)]
    return table


#: The camera table of the default spec (cameras 1-5 ordinary, camera 6 hard).
CAMERA_NUISANCES: dict[int, CameraNuisance] = camera_nuisances(SyntheticSpec())


def spec_hash(spec: SyntheticSpec) -> str:
    """A short stable hash of a spec (and the generator version) for cache folder names."""
    payload = json.dumps({"version": SYNTHETIC_VERSION, "spec": asdict(spec)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------------

# Keys of the seed sequences. Every key has the same length (SeedSequence pads short entropy
# with zeros, so [1] and [1, 0] would collide).
_TAG_IDENTITY, _TAG_TRAIN, _TAG_QUERY, _TAG_GALLERY = 0, 1, 2, 3
_TAG_DISTRACTOR, _TAG_JUNK, _TAG_DISTRACTOR_ID, _TAG_JUNK_ID = 4, 5, 6, 7

_SKIN_TONES = np.array(
    [(250, 220, 195), (235, 192, 160), (205, 150, 110), (160, 105, 70), (100, 65, 45)],
    dtype=np.float32,
)
_HAIR_TONES = np.array(
    [(25, 20, 18), (70, 45, 28), (120, 80, 45), (205, 175, 110), (160, 160, 160), (150, 65, 30)],
    dtype=np.float32,
)
_TROUSER_TONES = np.array(
    [(40, 55, 95), (70, 95, 140), (28, 28, 30), (95, 95, 98), (175, 155, 115), (60, 75, 50), (220, 220, 215)],
    dtype=np.float32,
)
_PATTERNS = ("solid", "stripes", "two_tone")

_SKIN, _HAIR, _SHIRT, _TROUSERS, _SHOES, _BAG = 1, 2, 3, 4, 5, 6


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _clothing_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.25:  # black, greys, white
        value = rng.choice([0.12, 0.35, 0.6, 0.85]) + rng.uniform(-0.05, 0.05)
        return np.full(3, value * 255.0, dtype=np.float32)
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.35, 0.95))
    return np.array([r, g, b], dtype=np.float32) * 255.0


@dataclass(frozen=True)
class _Identity:
    shirt: np.ndarray
    shirt2: np.ndarray
    pattern: str
    stripe_period: float  # fraction of person height
    long_sleeves: bool
    trousers: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    shoes: np.ndarray
    width_ratio: float
    height_ratio: float
    bag_side: int  # -1 left, +1 right, 0 no bag
    bag: np.ndarray


def _sample_identity(rng: np.random.Generator) -> _Identity:
    shirt = _clothing_colour(rng)
    shirt2 = _clothing_colour(rng)
    while float(np.abs(shirt2 - shirt).sum()) < 120.0:  # keep patterns visible
        shirt2 = _clothing_colour(rng)
    trousers = _TROUSER_TONES[rng.integers(len(_TROUSER_TONES))] + rng.normal(0, 10, 3) if rng.random() < 0.6 else _clothing_colour(rng)
    return _Identity(
        shirt=shirt,
        shirt2=shirt2,
        pattern=_PATTERNS[rng.integers(len(_PATTERNS))],
        stripe_period=float(rng.uniform(0.045, 0.08)),
        long_sleeves=bool(rng.random() < 0.5),
        trousers=np.clip(trousers, 0, 255).astype(np.float32),
        skin=_SKIN_TONES[rng.integers(len(_SKIN_TONES))],
        hair=_HAIR_TONES[rng.integers(len(_HAIR_TONES))],
        long_hair=bool(rng.random() < 0.3),
        shoes=_clothing_colour(rng) * 0.6,
        width_ratio=float(rng.uniform(0.85, 1.18)),
        height_ratio=float(rng.uniform(0.92, 1.04)),
        bag_side=int(rng.choice([-1, 0, 0, 1])),
        bag=_clothing_colour(rng),
    )


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _quad(label: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], w0: float, w1: float, value: int) -> None:
    """A limb: a convex quad from p0 (width w0) to p1 (width w1) with round ends."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    norm = max(float(np.hypot(dx, dy)), 1e-6)
    nx, ny = -dy / norm, dx / norm
    pts = np.array(
        [
            _pt(p0[0] + nx * w0 / 2, p0[1] + ny * w0 / 2),
            _pt(p1[0] + nx * w1 / 2, p1[1] + ny * w1 / 2),
            _pt(p1[0] - nx * w1 / 2, p1[1] - ny * w1 / 2),
            _pt(p0[0] - nx * w0 / 2, p0[1] - ny * w0 / 2),
        ],
        dtype=np.int32,
    )
    cv2.fillConvexPoly(label, pts, value, cv2.LINE_8, _SHIFT)
    cv2.circle(label, _pt(*p1), int(round(w1 / 2 * _ONE)), value, -1, cv2.LINE_8, _SHIFT)


def _draw_person(label: np.ndarray, ident: _Identity, cx: float, foot_y: float, ph: float, rng: np.random.Generator) -> tuple[float, float]:
    """Draw part labels of a front-facing person; return the torso's (top, bottom) rows."""
    u, wr = ph, ident.width_ratio
    top = foot_y - ph
    y = lambda f: top + f * u  # noqa: E731 - fraction of height -> row
    shoulder = 0.13 * u * wr
    waist = 0.11 * u * wr
    arm_w = 0.055 * u * wr
    leg_w = 0.085 * u * wr
    spread = rng.uniform(0.0, 0.06) * u
    swing = rng.uniform(-0.02, 0.03) * u

    # legs and shoes
    for side in (-1, 1):
        hip = (cx + side * 0.055 * u * wr, y(0.50))
        ankle = (cx + side * (0.05 * u * wr + spread / 2), y(0.955))
        _quad(label, hip, ankle, leg_w, leg_w * 0.75, _TROUSERS)
        cv2.ellipse(label, _pt(ankle[0] + side * 0.012 * u, y(0.975)), _pt(0.04 * u, 0.025 * u), 0, 0, 360, _SHOES, -1, cv2.LINE_8, _SHIFT)
    # long hair behind the head and shoulders
    if ident.long_hair:
        cv2.ellipse(label, _pt(cx, y(0.12)), _pt(0.062 * u, 0.085 * u), 0, 0, 360, _HAIR, -1, cv2.LINE_8, _SHIFT)
    # torso (shoulders to hips) and neck
    torso = np.array(
        [
            _pt(cx - shoulder, y(0.165)),
            _pt(cx + shoulder, y(0.165)),
            _pt(cx + waist, y(0.53)),
            _pt(cx - waist, y(0.53)),
        ],
        dtype=np.int32,
    )
    _quad(label, (cx, y(0.12)), (cx, y(0.17)), 0.045 * u, 0.045 * u, _SKIN)
    cv2.fillConvexPoly(label, torso, _SHIRT, cv2.LINE_8, _SHIFT)
    # arms: sleeve then forearm (skin when short-sleeved) and hand
    for side in (-1, 1):
        s = (cx + side * (shoulder + arm_w * 0.2), y(0.18))
        elbow = (cx + side * (shoulder + arm_w * 0.55 + swing * 0.5), y(0.34))
        hand = (cx + side * (shoulder + arm_w * 0.6 + swing), y(0.50))
        _quad(label, s, elbow, arm_w * 1.1, arm_w, _SHIRT)
        _quad(label, elbow, hand, arm_w, arm_w * 0.85, _SHIRT if ident.long_sleeves else _SKIN)
        cv2.circle(label, _pt(hand[0], hand[1] + 0.02 * u), int(round(0.03 * u * _ONE)), _SKIN, -1, cv2.LINE_8, _SHIFT)
    # head with hair on top
    cv2.ellipse(label, _pt(cx, y(0.08)), _pt(0.05 * u, 0.068 * u), 0, 0, 360, _SKIN, -1, cv2.LINE_8, _SHIFT)
    cv2.ellipse(label, _pt(cx, y(0.07)), _pt(0.053 * u, 0.06 * u), 0, 180, 360, _HAIR, -1, cv2.LINE_8, _SHIFT)
    # shoulder bag with a strap across the torso
    if ident.bag_side:
        side = ident.bag_side
        bx = cx + side * (shoulder + arm_w * 0.9)
        bag = np.array(
            [
                _pt(bx - 0.055 * u, y(0.40)),
                _pt(bx + 0.055 * u, y(0.40)),
                _pt(bx + 0.055 * u, y(0.55)),
                _pt(bx - 0.055 * u, y(0.55)),
            ],
            dtype=np.int32,
        )
        cv2.fillConvexPoly(label, bag, _BAG, cv2.LINE_8, _SHIFT)
        _quad(label, (cx - side * shoulder * 0.7, y(0.17)), (bx, y(0.41)), 0.022 * u, 0.022 * u, _BAG)
    return y(0.165), y(0.53)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    small = rng.standard_normal((cells * 2, cells)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _background(style: str, base_rgb: tuple[int, int, int], height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 (H, W, 3) RGB background of the camera's style with per-image variation."""
    base = np.asarray(base_rgb, dtype=np.float32) + rng.normal(0, 8, 3).astype(np.float32)
    img = np.empty((height, width, 3), dtype=np.float32)
    img[:] = base
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    if style == "pavement":
        horizon = int(height * rng.uniform(0.5, 0.7))
        img[horizon:] *= 0.8
        img += (_smooth_noise(rng, height, width, 4) * 10)[..., None]
    elif style == "tiles":
        period = max(4, int(width * rng.uniform(0.18, 0.28)))
        ox, oy = rng.integers(period, size=2)
        grid = (((xx + ox) % period) < 1.5) | (((yy + oy) % period) < 1.5)
        img[grid] *= 0.72
    elif style == "foliage":
        blotch = _smooth_noise(rng, height, width, 5) * 22 + _smooth_noise(rng, height, width, 12) * 12
        img += blotch[..., None] * np.array([0.8, 1.0, 0.6], dtype=np.float32)
    elif style == "bricks":
        row = max(4, int(height * 0.06))
        brick = max(6, int(width * 0.35))
        oy = int(rng.integers(row))
        r = ((yy + oy) // row).astype(np.int32)
        joint = ((xx + (r % 2) * brick / 2) % brick) < 1.5
        mortar = (((yy + oy) % row) < 1.2) | joint
        img[np.broadcast_to(mortar, (height, width))] = base * 0.6 + 90
    elif style == "shopfront":
        panel = max(6, int(width * rng.uniform(0.25, 0.4)))
        ox = int(rng.integers(panel))
        light = (((xx + ox) // panel) % 2) == 1
        img[np.broadcast_to(light, (height, width))] *= 1.35
        frame = int(height * rng.uniform(0.15, 0.3))
        img[frame : frame + 3] = base * 0.5
    elif style == "night":
        img += (_smooth_noise(rng, height, width, 3) * 10)[..., None]
        for _ in range(int(rng.integers(1, 4))):  # lit windows and lamps
            x0, y0 = int(rng.integers(width)), int(rng.integers(height // 2))
            w = int(rng.integers(3, max(4, width // 5)))
            h = int(rng.integers(3, max(4, height // 10)))
            img[y0 : y0 + h, x0 : x0 + w] = (220, 200, 140)
    else:  # pragma: no cover - table and styles are edited together
        raise ValueError(f"unknown background style {style!r}")
    # clutter: poles, bins, other objects in random colours
    for _ in range(int(rng.integers(0, 3))):
        x0 = int(rng.integers(width))
        w = int(rng.integers(2, max(3, width // 4)))
        y0 = int(rng.integers(height // 3, height))
        img[y0:, x0 : x0 + w] = _clothing_colour(rng) * 0.8
    return img


def _apply_camera(img: np.ndarray, cam: CameraNuisance, rng: np.random.Generator) -> np.ndarray:
    """Apply a camera's illumination, cast, gamma, blur and noise; return uint8 RGB."""
    height = img.shape[0]
    illum = float(rng.normal(1.0, 0.06))
    gains = np.asarray(cam.cast, dtype=np.float32) * np.float32(cam.gain * illum / 255.0)
    x = np.clip(img * gains, 0.0, 1.0)
    if cam.gamma != 1.0:
        x = np.power(x, np.float32(cam.gamma))
    if cam.blur_sigma > 0:
        sigma = cam.blur_sigma * height / _REFERENCE_HEIGHT
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma)
    x = x * 255.0
    if cam.noise_sigma > 0:
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(cam.noise_sigma)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _render_image(
    ident: _Identity, cam: CameraNuisance, rng: np.random.Generator, height: int, width: int, junk: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Render one image: ``(rgb uint8 (H, W, 3), mask uint8 (H, W) in {0, 255})``.

    The mask is exactly the drawn person pixels (bag included); camera nuisances are applied
    to the whole picture afterwards without moving pixels, so the mask stays aligned. A junk
    image shows either only background or a badly cut fragment of a person.
    """
    bg = _background(cam.background, cam.background_rgb, height, width, rng)
    label = np.zeros((height, width), dtype=np.uint8)
    if junk:
        if rng.random() < 0.7:  # a fragment: too close and badly placed
            ph = height * rng.uniform(1.5, 2.2)
            foot_y = height * rng.uniform(0.55, 1.9)
            cx = width * rng.uniform(0.1, 0.9)
            top, bottom = _draw_person(label, ident, cx, foot_y, ph, rng)
        else:
            top, bottom = 0.0, 1.0
    else:
        scale = cam.person_scale * ident.height_ratio * rng.uniform(0.9, 1.1)
        ph = min(height * scale, height * 0.98)
        foot_y = height - 1 - height * rng.uniform(0.005, 0.03)
        cx = width / 2 + rng.normal(0, 0.05) * width
        top, bottom = _draw_person(label, ident, cx, foot_y, ph, rng)

    # colours: identity colours with a little per-image variation
    lut = np.zeros((7, 3), dtype=np.float32)
    parts = {_SKIN: ident.skin, _HAIR: ident.hair, _SHIRT: ident.shirt, _TROUSERS: ident.trousers, _SHOES: ident.shoes, _BAG: ident.bag}
    for part, colour in parts.items():
        lut[part] = colour + rng.normal(0, 6, 3)
    shirt2 = ident.shirt2 + rng.normal(0, 6, 3).astype(np.float32)
    person = lut[label]
    if ident.pattern != "solid":
        rows = np.arange(height, dtype=np.float32)
        if ident.pattern == "stripes":
            period = max(2.0, ident.stripe_period * (bottom - top) / 0.365)
            alt = (np.floor((rows - top) / period).astype(np.int64) % 2) == 1
        else:  # two_tone: the lower part of the shirt in the second colour
            alt = rows > top + 0.55 * (bottom - top)
        sel = (label == _SHIRT) & alt[:, None]
        person[sel] = shirt2
    # soft cylindrical shading so figures are not flat cut-outs
    cols = np.arange(width, dtype=np.float32)
    shade = 1.0 - 0.18 * np.clip(np.abs(cols - width / 2) / (width / 2), 0, 1) ** 2
    person *= (shade * np.float32(rng.uniform(0.92, 1.06)))[None, :, None]

    fg = label > 0
    img = np.where(fg[..., None], person, bg)
    rgb = _apply_camera(img, cam, rng)
    return rgb, fg.astype(np.uint8) * 255


# --------------------------------------------------------------------------------------------
# Planning and writing
# --------------------------------------------------------------------------------------------


class _Job(NamedTuple):
    folder: str
    name: str
    pid: int
    cam: int
    kind: str  # "person", "distractor", "junk"
    ident_key: tuple[int, ...]
    image_key: tuple[int, ...]


def _identity_cameras(spec: SyntheticSpec, pid: int) -> list[int]:
    rng = _rng(spec.seed, _TAG_IDENTITY, pid, 1, 0)
    cams = rng.choice(spec.num_cameras, size=spec.cameras_per_id, replace=False) + 1
    return sorted(int(c) for c in cams)


def _plan(spec: SyntheticSpec) -> list[_Job]:
    """Every image to write, in a fixed order, with unique Market-style names."""
    frames = dict.fromkeys(range(1, spec.num_cameras + 1), 0)

    def name(pid: int, cam: int, idx: int) -> str:
        frame = frames[cam]
        frames[cam] += 1
        pid_text = "-1" if pid == -1 else f"{pid:04d}"
        return f"{pid_text}_c{cam}s1_{frame:06d}_{idx:02d}"

    jobs: list[_Job] = []
    train_pids = range(1, spec.num_train_ids + 1)
    test_pids = range(spec.num_train_ids + 1, spec.num_train_ids + spec.num_test_ids + 1)
    splits = (
        ("bounding_box_train", _TAG_TRAIN, train_pids, spec.images_per_camera),
        ("query", _TAG_QUERY, test_pids, 1),
        ("bounding_box_test", _TAG_GALLERY, test_pids, spec.images_per_camera),
    )
    for folder, tag, pids, per_cam in splits:
        for pid in pids:
            ident_key = (spec.seed, _TAG_IDENTITY, pid, 0, 0)
            for cam in _identity_cameras(spec, pid):
                for idx in range(per_cam):
                    jobs.append(_Job(folder, name(pid, cam, idx), pid, cam, "person", ident_key, (spec.seed, tag, pid, cam, idx)))
    for k in range(spec.num_distractors):
        cam = int(_rng(spec.seed, _TAG_DISTRACTOR_ID, k, 1, 0).integers(1, spec.num_cameras + 1))
        jobs.append(
            _Job(
                "bounding_box_test",
                name(0, cam, k % 100),
                0,
                cam,
                "distractor",
                (spec.seed, _TAG_DISTRACTOR_ID, k, 0, 0),
                (spec.seed, _TAG_DISTRACTOR, k, cam, 0),
            )
        )
    for k in range(spec.num_junk):
        cam = int(_rng(spec.seed, _TAG_JUNK_ID, k, 1, 0).integers(1, spec.num_cameras + 1))
        jobs.append(
            _Job(
                "bounding_box_test",
                name(-1, cam, k % 100),
                -1,
                cam,
                "junk",
                (spec.seed, _TAG_JUNK_ID, k, 0, 0),
                (spec.seed, _TAG_JUNK, k, cam, 0),
            )
        )
    return jobs


def _counts(spec: SyntheticSpec, jobs: list[_Job]) -> dict[str, dict]:
    counts: dict[str, dict] = {}
    for split, folder in SPLIT_FOLDERS.items():
        mine = [j for j in jobs if j.folder == folder]
        per_cam = {str(c): sum(j.cam == c for j in mine) for c in range(1, spec.num_cameras + 1)}
        counts[split] = {
            "folder": folder,
            "files": len(mine),
            "identities": len({j.pid for j in mine if j.pid > 0}),
            "distractors": sum(j.pid == 0 for j in mine),
            "junk": sum(j.pid == -1 for j in mine),
            "per_camera": per_cam,
        }
    return counts


def _meta(spec: SyntheticSpec, jobs: list[_Job]) -> dict:
    return {
        "generator": "trainables.data.synthetic",
        "version": SYNTHETIC_VERSION,
        "spec": asdict(spec),
        "spec_hash": spec_hash(spec),
        "counts": _counts(spec, jobs),
        "train_pids": [1, spec.num_train_ids],
        "test_pids": [spec.num_train_ids + 1, spec.num_train_ids + spec.num_test_ids],
        "hard_camera": spec.hard_camera,
        "cameras": {str(c): asdict(n) for c, n in camera_nuisances(spec).items()},
        "masks": "masks/<folder>/<stem>.png, single channel, 255 = person (bag included), 0 = background, pixel-aligned with the image",
    }


def _read_meta(root: Path) -> dict | None:
    try:
        return json.loads((root / _META_NAME).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(root: Path, spec: SyntheticSpec) -> bool:
    """True when ``root`` holds a finished dataset of this version and spec."""
    meta = _read_meta(root)
    if meta is None or meta.get("version") != SYNTHETIC_VERSION or meta.get("spec") != asdict(spec):
        return False
    for split, folder in SPLIT_FOLDERS.items():
        expected = meta.get("counts", {}).get(split, {}).get("files")
        for sub in (root / folder, root / "masks" / folder):
            if not sub.is_dir() or sum(1 for _ in sub.iterdir()) != expected:
                return False
    return True


def _write_dataset(root: Path, spec: SyntheticSpec, progress: Callable[[str], None] | None) -> None:
    jobs = _plan(spec)
    table = camera_nuisances(spec)
    for folder in SPLIT_FOLDERS.values():
        (root / folder).mkdir(parents=True)
        (root / "masks" / folder).mkdir(parents=True)
    step = max(1, len(jobs) // 10)
    identities: dict[tuple[int, ...], _Identity] = {}
    for i, job in enumerate(jobs):
        ident = identities.get(job.ident_key)
        if ident is None:
            ident = identities.setdefault(job.ident_key, _sample_identity(_rng(*job.ident_key)))
        rgb, mask = _render_image(ident, table[job.cam], _rng(*job.image_key), spec.height, spec.width, junk=job.kind == "junk")
        ok_img, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        ok_mask, png = cv2.imencode(".png", mask)
        if not (ok_img and ok_mask):  # pragma: no cover - encoders do not fail on valid arrays
            raise DatasetError(f"could not encode synthetic image {job.name!r}")
        (root / job.folder / f"{job.name}.jpg").write_bytes(jpg.tobytes())
        (root / "masks" / job.folder / f"{job.name}.png").write_bytes(png.tobytes())
        if progress is not None and ((i + 1) % step == 0 or i + 1 == len(jobs)):
            progress(f"synthetic dataset: {i + 1}/{len(jobs)} images")
    # meta.json last: its presence marks a finished dataset
    (root / _META_NAME).write_text(json.dumps(_meta(spec, jobs), indent=2, sort_keys=True) + "\n")


def generate_synthetic_dataset(
    out_dir: str | Path, spec: SyntheticSpec = SyntheticSpec(), progress: Callable[[str], None] | None = None
) -> Path:
    """Write the synthetic dataset of ``spec`` to ``out_dir`` and return ``out_dir``.

    If ``out_dir`` already holds a complete dataset of the same version and spec it is
    returned untouched. Otherwise the dataset is written into a temporary sibling folder and
    renamed into place, so ``out_dir`` is either absent or complete; an empty ``out_dir`` is
    replaced.

    Raises:
        DatasetError: ``out_dir`` exists and holds something else (delete it or pick another
            folder).
    """
    out_dir = Path(out_dir)
    if _is_complete(out_dir, spec):
        return out_dir
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise DatasetError(
            f"{str(out_dir)!r} exists but does not hold a complete synthetic dataset "
            f"(version {SYNTHETIC_VERSION}, spec {spec}); delete it or choose another folder"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        if progress is not None:
            progress(f"generating synthetic dataset v{SYNTHETIC_VERSION} into {out_dir}")
        _write_dataset(tmp, spec, progress)
        try:
            if out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()  # an empty placeholder (os.rename over it fails on Windows)
            os.rename(tmp, out_dir)
        except OSError as exc:
            if _is_complete(out_dir, spec):  # another process finished first: use its copy
                shutil.rmtree(tmp, ignore_errors=True)
                return out_dir
            raise DatasetError(f"could not move the generated dataset into {str(out_dir)!r}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def default_cache_dir() -> Path:
    """``$REID_ORCH_CACHE`` if set, else ``~/.cache/reid-orchestrator``."""
    env = os.environ.get(_CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "reid-orchestrator"


def ensure_synthetic_dataset(
    cache_dir: str | Path | None = None, spec: SyntheticSpec = SyntheticSpec(), progress: Callable[[str], None] | None = None
) -> Path:
    """Return ``<cache>/synthetic-v{VERSION}-<spec hash>``, generating it on first use.

    Safe when several processes call it at once: each generates into its own temporary
    folder, the first rename wins and the others discard their copies.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache / f"synthetic-v{SYNTHETIC_VERSION}-{spec_hash(spec)}"
    return generate_synthetic_dataset(root, spec, progress)
