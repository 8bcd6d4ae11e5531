"""Settings: read from the environment, checked, and every one documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from kinema.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `KINEMA_([A-Z0-9_]+)` \|", DOCS.read_text(), flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from docs/configuration.md"
    assert documented - expected == set(), "docs/configuration.md names settings that do not exist"


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KINEMA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KINEMA_WORKERS", "3")
    monkeypatch.setenv("KINEMA_PRICES", '{"hailuo/2-3-image-to-video-standard:6:768P": 12}')
    monkeypatch.setenv("KINEMA_PUBLIC_URL", "https://video.example.com/")
    settings = Settings()
    assert settings.workers == 3
    assert settings.prices == {"hailuo/2-3-image-to-video-standard:6:768P": 12}
    assert settings.database_url == f"sqlite:///{tmp_path / 'kinema.db'}"
    assert settings.public_url == "https://video.example.com"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("workers", -1),
        ("public_url", "video.example.com"),
        ("create_task_rate_limit", "lots"),
        ("lease_seconds", 0),
        ("port", 70000),
        ("unknown_setting", 1),
        ("secret_key", "short"),
    ],
)
def test_bad_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"storage": "s3"}, "needs KINEMA_S3_BUCKET"),
        ({"s3_access_key_id": "AKIA"}, "go together"),
        ({"s3_prefix": "a/../b"}, "s3_prefix"),
        ({"s3_endpoint_url": "minio:9000"}, "s3_endpoint_url"),
        ({"s3_links": "public"}, "s3_links"),
        ({"s3_multipart_threshold_bytes": 1024}, "s3_multipart_threshold_bytes"),
    ],
)
def test_s3_settings_are_checked(values: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Settings(**values)  # type: ignore[arg-type]


def test_an_s3_prefix_is_a_folder_however_it_is_written() -> None:
    assert Settings(s3_prefix="/kinema/videos/").s3_prefix == "kinema/videos"
    assert Settings(
        storage="s3", s3_bucket="b", s3_endpoint_url="http://127.0.0.1:9000/"
    ).s3_endpoint_url == ("http://127.0.0.1:9000")
