"""RGB to Y'CbCr (BT.709, limited range), the colour space every Kinema video is tagged with."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

# BT.709 luma weights.
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


def _rgb_to_ycbcr_matrix() -> NDArray[np.float64]:
    """The 3x4 affine map from 8-bit R'G'B' to 8-bit limited-range Y'CbCr."""
    luma = np.array([_KR, _KG, _KB])
    cb = (np.array([0.0, 0.0, 1.0]) - luma) / (2.0 * (1.0 - _KB))
    cr = (np.array([1.0, 0.0, 0.0]) - luma) / (2.0 * (1.0 - _KR))
    scale = np.array([219.0, 224.0, 224.0])[:, None] / 255.0
    linear = np.vstack([luma, cb, cr]) * scale
    offset = np.array([[16.0], [128.0], [128.0]])
    return np.hstack([linear, offset])


_RGB_TO_YCBCR = _rgb_to_ycbcr_matrix()


def rgb_to_ycbcr_planes(
    rgb: NDArray[np.uint8],
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    """Full-resolution Y', Cb and Cr planes of an RGB image (H x W x 3, uint8)."""
    y, cb, cr = (np.asarray(plane, dtype=np.uint8) for plane in cv2.split(cv2.transform(rgb, _RGB_TO_YCBCR)))
    return y, cb, cr


def subsample_chroma(plane: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Halve a chroma plane in both directions by averaging 2x2 blocks (centre-sited)."""
    height, width = plane.shape
    return np.asarray(
        cv2.resize(plane, (width // 2, height // 2), interpolation=cv2.INTER_AREA), dtype=np.uint8
    )


def rgb_to_i420(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """An RGB image as one planar 4:2:0 buffer: Y, then Cb, then Cr, shape (H * 3 / 2, W)."""
    height, width = rgb.shape[:2]
    y, cb, cr = rgb_to_ycbcr_planes(rgb)
    out = np.empty((height * 3 // 2, width), np.uint8)
    flat = out.reshape(-1)
    quarter = height * width // 4
    out[:height] = y
    flat[height * width : height * width + quarter] = subsample_chroma(cb).reshape(-1)
    flat[height * width + quarter :] = subsample_chroma(cr).reshape(-1)
    return out


_YCBCR_TO_RGB = np.linalg.inv(np.vstack([_RGB_TO_YCBCR, [0.0, 0.0, 0.0, 1.0]]))[:3]


def i420_to_rgb(planes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A planar 4:2:0 buffer (BT.709, limited range) back to RGB; chroma enlarged bilinearly."""
    rows, width = planes.shape
    height = rows * 2 // 3
    flat = planes.reshape(-1)
    quarter = height * width // 4
    y = planes[:height]
    cb = flat[height * width : height * width + quarter].reshape(height // 2, width // 2)
    cr = flat[height * width + quarter :].reshape(height // 2, width // 2)
    full = [cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR) for plane in (cb, cr)]
    ycbcr = cv2.merge([y, full[0], full[1]])
    return np.asarray(cv2.transform(ycbcr, _YCBCR_TO_RGB), dtype=np.uint8)
