"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import pytest
from tests.conftest import textured_image

README = Path(__file__).resolve().parents[2] / "README.md"


def test_python_example_renders_a_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "the README has a Python example"
    cv2.imwrite(str(tmp_path / "photo.jpg"), textured_image(1280, 720))
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(README), "exec"), {})
    with av.open(str(tmp_path / "lighthouse.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1366, 768)
        assert sum(1 for _ in container.decode(video=0)) == 150
