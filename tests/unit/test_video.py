from __future__ import annotations

import pytest

from kinema.domain.video import FrameSize, Resolution, output_size


@pytest.mark.parametrize(
    ("width", "height", "resolution", "expected"),
    [
        (1920, 1080, Resolution.P768, (1366, 768)),
        (1920, 1080, Resolution.P1080, (1920, 1080)),
        (1920, 1080, Resolution.P512, (910, 512)),
        (1080, 1920, Resolution.P768, (768, 1366)),
        (1000, 1000, Resolution.P768, (768, 768)),
        (4000, 3000, Resolution.P1080, (1440, 1080)),
        (2500, 1000, Resolution.P768, (1920, 768)),  # 5:2, the widest accepted
        (333, 500, Resolution.P768, (768, 1154)),  # 768 * 500 / 333 = 1153.2, rounded to even
    ],
)
def test_output_size_keeps_the_short_side_and_the_aspect_ratio(
    width: int, height: int, resolution: Resolution, expected: tuple[int, int]
) -> None:
    size = output_size(width, height, resolution)
    assert (size.width, size.height) == expected


def test_frame_sizes_must_be_even() -> None:
    with pytest.raises(ValueError, match="even"):
        FrameSize(1365, 768)


def test_resolution_names_its_short_side() -> None:
    assert [r.short_side for r in Resolution] == [512, 768, 1080]
