"""Where the eye goes in a picture: the point a push-in closes in on.

Spectral-residual saliency (Hou and Zhang, 2007) on a small thumbnail: the parts of the
log spectrum that a smooth spectrum does not explain mark what stands out. Cheap (a 64x64
FFT), deterministic, and good enough to steer a slight drift.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

_THUMBNAIL = 64
MAX_OFFSET = 0.2
"""How far from the centre the focus may sit, as a fraction of the frame: a drift, not a swerve."""


def point_of_interest(image: NDArray[np.uint8]) -> tuple[float, float]:
    """The salient point as (x, y) fractions of the width and height, near the centre."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    thumb = cv2.resize(gray, (_THUMBNAIL, _THUMBNAIL), interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fft2(thumb)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3))
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 3.0)
    weights = saliency**2
    total = float(weights.sum())
    if not np.isfinite(total) or total <= 0.0:
        return (0.5, 0.5)
    grid = (np.arange(_THUMBNAIL) + 0.5) / _THUMBNAIL
    x = float((weights.sum(axis=0) * grid).sum() / total)
    y = float((weights.sum(axis=1) * grid).sum() / total)
    return (
        float(np.clip(x, 0.5 - MAX_OFFSET, 0.5 + MAX_OFFSET)),
        float(np.clip(y, 0.5 - MAX_OFFSET, 0.5 + MAX_OFFSET)),
    )
