"""What a file is, told from its first bytes and never from its name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from kinema.media.intake import sniff_image_type


def _is_gif(data: bytes) -> bool:
    return data[:6] in (b"GIF87a", b"GIF89a")


def _is_mp4(data: bytes) -> bool:
    # ISO base media: a box whose type is "ftyp" first; QuickTime files share the layout.
    return data[4:8] == b"ftyp"


def _is_webm(data: bytes) -> bool:
    return data.startswith(b"\x1a\x45\xdf\xa3")


def _is_pdf(data: bytes) -> bool:
    return data.startswith(b"%PDF-")


#: The types beyond JPEG, PNG and WebP that can be recognised, for ``KINEMA_UPLOAD_TYPES``.
_OTHER_TYPES: Final[dict[str, Callable[[bytes], bool]]] = {
    "image/gif": _is_gif,
    "video/mp4": _is_mp4,
    "video/webm": _is_webm,
    "application/pdf": _is_pdf,
}

KNOWN_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/webp", *_OTHER_TYPES})

EXTENSIONS: Final = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "application/pdf": ".pdf",
}


def sniff_type(data: bytes) -> str | None:
    """The MIME type of `data` by its content, or None when it is none of `KNOWN_TYPES`."""
    image = sniff_image_type(data)
    if image is not None:
        return image
    for mime_type, matches in _OTHER_TYPES.items():
        if matches(data):
            return mime_type
    return None
