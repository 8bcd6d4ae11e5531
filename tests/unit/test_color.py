from __future__ import annotations

import numpy as np
import pytest

from kinema.media.color import rgb_to_i420


@pytest.mark.parametrize(
    ("rgb", "ycbcr"),
    [
        ((0, 0, 0), (16, 128, 128)),
        ((255, 255, 255), (235, 128, 128)),
        ((255, 0, 0), (63, 102, 240)),  # BT.709, not BT.601 (which gives Y 81)
        ((0, 255, 0), (173, 42, 26)),
        ((0, 0, 255), (32, 240, 118)),
    ],
)
def test_bt709_limited_range(rgb: tuple[int, int, int], ycbcr: tuple[int, int, int]) -> None:
    image = np.full((4, 6, 3), rgb, np.uint8)
    planes = rgb_to_i420(image)
    assert planes.shape == (6, 6)
    flat = planes.reshape(-1)
    y, cb, cr = flat[:24], flat[24:30], flat[30:]
    assert (y == ycbcr[0]).all()
    assert (cb == ycbcr[1]).all()
    assert (cr == ycbcr[2]).all()
