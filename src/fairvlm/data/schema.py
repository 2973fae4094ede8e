"""The sample: one image, one prompt, an optional target and its sensitive attributes.

This is the contract every part of fairvlm reads and writes. Attributes are a
``dict[str, str | None]``: ``None`` means *unknown* and is never mapped to a class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from fairvlm.errors import DataError

#: The value a dataset stores for an unknown attribute. ``None``, never a class.
UNKNOWN = None


def _bounded(img: Image.Image, max_pixels: int | None, own: bool) -> Image.Image:
    """``img`` reduced to at most ``max_pixels`` pixels (aspect ratio kept). ``own``: the
    image was opened here, so JPEG may be decoded at a reduced scale (``draft`` changes
    the image object in place, which must not happen to a sample's own image)."""
    w, h = img.size
    if not max_pixels or w * h <= max_pixels:
        return img
    scale = (max_pixels / (w * h)) ** 0.5
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    if own:
        img.draft("RGB", size)  # a no-op for formats other than JPEG
    return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


@dataclass
class Sample:
    """One example.

    Attributes:
        id: unique within its dataset.
        image: a PIL image, a path to an image file, or ``None`` for text-only prompts.
        prompt: the user turn, without any chat template and without the image token.
        target: the reference answer (training target, VQA label, reference report).
        task: a registered audit task (``fairvlm.registry.AUDIT_TASKS``).
        attributes: sensitive attributes, e.g. ``{"sex": "female", "age_group": None}``.
        options: candidate answers for closed questions (multiple choice, yes/no).
        concept: the social concept of the sample (ASD, skew), e.g. ``"doctor"``.
        counterfactual_set: the id of the counterfactual set the image belongs to.
        split: ``train`` / ``finetune`` / ``test`` ...
        meta: free-form extra fields (kept through storage as JSON).
    """

    id: str
    image: Image.Image | str | None
    prompt: str
    target: str | None = None
    task: str = "vqa"
    attributes: dict[str, str | None] = field(default_factory=dict)
    options: list[str] | None = None
    concept: str | None = None
    counterfactual_set: str | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load_image(self, max_pixels: int | None = None) -> Image.Image | None:
        """Return the image as an RGB PIL image (opening it if it is a path).

        With ``max_pixels``, a larger image is reduced to at most that many pixels,
        keeping its aspect ratio, while it is decoded (JPEG's draft mode), so that
        memory does not grow with the source resolution.

        Raises:
            DataError: the file is missing or unreadable; the message names the sample.
        """
        if self.image is None:
            return None
        # A stored image is decoded lazily: a truncated file that passed the header check
        # fails in convert(), so both paths are guarded.
        try:
            if isinstance(self.image, Image.Image):
                return _bounded(self.image, max_pixels, own=False).convert("RGB")
            with Image.open(self.image) as img:
                return _bounded(img, max_pixels, own=True).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            source = "its stored image" if isinstance(self.image, Image.Image) else repr(self.image)
            raise DataError(
                f"sample {self.id!r}: {source} cannot be read ({exc}); fix or re-import the "
                "image, or remove the sample"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (the image left as it is)."""
        return asdict(self)
