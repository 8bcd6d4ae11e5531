"""Image intake shared by every engine: accept or refuse an upload, then decode it to 8-bit sRGB.

Cheap checks run first (size in bytes, type by content, pixel count from the header) so a huge
file or a decompression bomb is refused before any pixel is decoded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from io import BytesIO
from types import MappingProxyType
from typing import Final, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import ExifTags, Image, ImageCms, ImageOps

from kinema.domain.errors import InvalidInput

_T = TypeVar("_T")


class InvalidImage(InvalidInput):
    """The uploaded image cannot be used: wrong type, wrong size or shape, or damaged."""


@dataclass(frozen=True, slots=True)
class AcceptanceRules:
    """What an input image must satisfy before an engine sees it."""

    max_bytes: int = 10 * 1024 * 1024
    min_short_side: int = 300
    min_aspect: float = 2 / 5  #: Width / height of the tallest image accepted.
    max_aspect: float = 5 / 2  #: Width / height of the widest image accepted.
    #: Decompression-bomb cap, checked from the header before decoding. Pillow's own cap
    #: (``Image.MAX_IMAGE_PIXELS``, about 89 MP) still applies on top of a larger value.
    max_pixels: int = 50_000_000

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.min_short_side <= 0 or self.max_pixels <= 0:
            raise ValueError("byte, side and pixel limits must be positive")
        if not 0 < self.min_aspect <= self.max_aspect:
            raise ValueError(f"aspect range {self.min_aspect}..{self.max_aspect} is empty or not positive")


DEFAULT_RULES: Final = AcceptanceRules()

#: The Pillow format names accepted, with the MIME type each is reported as.
ACCEPTED_FORMATS: Final[Mapping[str, str]] = MappingProxyType(
    {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
)
_FORMAT_BY_MIME_TYPE: Final = {mime_type: name for name, mime_type in ACCEPTED_FORMATS.items()}
_ACCEPTED_NAMES: Final = "JPEG, PNG or WebP"

_MEGABYTE: Final = 1024 * 1024
_BACKGROUND_GREY: Final = 128
#: Modes whose samples are wider than 8 bits; Pillow's own conversion of these clips instead of scaling.
_WIDE_GREY_MODES: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
#: Orientations (EXIF 5 to 8) that display the stored image turned a quarter, swapping its sides.
_QUARTER_TURN_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})
#: What Pillow's readers raise on malformed data. Only Pillow calls are guarded with it, so a bug of
#: ours is not mislabelled as a damaged upload.
_DAMAGED_DATA_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)


@dataclass(frozen=True, slots=True, eq=False)  # eq on arrays is ambiguous, so identity it is.
class DecodedImage:
    """An accepted image, upright, as read-only H x W x 3 RGB uint8 pixels (C-contiguous)."""

    pixels: NDArray[np.uint8]
    mime_type: str  #: As found from the content, never from a file name.
    byte_size: int  #: Size of the upload as received.

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def check_acceptable(byte_size: int, width: int, height: int, rules: AcceptanceRules = DEFAULT_RULES) -> None:
    """The acceptance rules as a function; raises InvalidImage with a user-facing message."""
    _check_byte_size(byte_size, rules)
    if width < 1 or height < 1:
        raise InvalidImage(f"image has no pixels ({width} x {height})")
    pixels = width * height
    if pixels > rules.max_pixels:
        raise InvalidImage(
            f"image has too many pixels ({width} x {height} = {pixels:,}); the limit is {rules.max_pixels:,}"
        )
    # Float division is correctly rounded, so a ratio exactly on a bound compares equal to it.
    aspect = width / height
    if not rules.min_aspect <= aspect <= rules.max_aspect:
        allowed = f"{_format_bound(rules.min_aspect)} to {_format_bound(rules.max_aspect)}"
        raise InvalidImage(
            f"image aspect ratio {_format_ratio(width, height)} ({width} x {height}) "
            f"is outside the allowed range {allowed}"
        )
    short_side = min(width, height)
    if short_side < rules.min_short_side:
        raise InvalidImage(
            f"image short side is {short_side} px ({width} x {height}); "
            f"at least {rules.min_short_side} px is required"
        )


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type of JPEG, PNG or WebP data, told by its magic bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_image(data: bytes, rules: AcceptanceRules = DEFAULT_RULES) -> DecodedImage:
    """Check an uploaded image against the rules and decode it to upright 8-bit sRGB pixels.

    Animated images give their first frame; transparency is flattened onto mid-grey.
    """
    _check_byte_size(len(data), rules)
    mime_type = _sniffed_type(data)
    with _read_first_frame(data, mime_type, rules) as frame:
        pixels = np.ascontiguousarray(_rgb_pixels(frame), dtype=np.uint8)
    pixels.flags.writeable = False
    return DecodedImage(pixels=pixels, mime_type=mime_type, byte_size=len(data))


def check_image(data: bytes, rules: AcceptanceRules = DEFAULT_RULES) -> str:
    """Refuse what `decode_image` would refuse, at a fraction of its cost; the image's type.

    For accepting an image now and decoding it when it is used. The whole file is read and
    decoded, so damage shows as it would there, but a JPEG is decoded at an eighth of its
    size, which its DCT gives nearly for free.
    """
    _check_byte_size(len(data), rules)
    mime_type = _sniffed_type(data)
    _read_first_frame(data, mime_type, rules, reduced=True).close()
    return mime_type


class DecodeSlots:
    """At most `at_once` images decoded at the same moment, their memory given back after each.

    A decode holds every pixel of the image: 150 MB for an image of 50 megapixels, so a burst
    of them, each cheap to ask for, would take the memory of the process. Beyond `at_once` they
    wait their turn. And the allocator keeps what a large decode freed for later use, in one
    pool per thread that decoded: each decode asks it to give its free memory back to the
    system, so that a burst leaves the process no larger than it found it.
    """

    def __init__(self, at_once: int) -> None:
        if at_once < 1:
            raise ValueError("at least one decode must be allowed at once")
        self.at_once = at_once
        self._slots = threading.BoundedSemaphore(at_once)
        self._lock = threading.Lock()
        self._decoding = 0
        self._waiting = 0

    @property
    def decoding(self) -> int:
        """Decodes running now."""
        with self._lock:
            return self._decoding

    @property
    def waiting(self) -> int:
        """Decodes waiting for their turn now."""
        with self._lock:
            return self._waiting

    def check_image(self, data: bytes, rules: AcceptanceRules = DEFAULT_RULES) -> str:
        """`check_image` in turn."""
        return self._in_turn(lambda: check_image(data, rules))

    def decode_image(self, data: bytes, rules: AcceptanceRules = DEFAULT_RULES) -> DecodedImage:
        """`decode_image` in turn."""
        return self._in_turn(lambda: decode_image(data, rules))

    def _in_turn(self, decode: Callable[[], _T]) -> _T:
        with self._lock:
            self._waiting += 1
        try:
            self._slots.acquire()
        finally:
            with self._lock:
                self._waiting -= 1
        try:
            with self._lock:
                self._decoding += 1
            try:
                return decode()
            finally:
                with self._lock:
                    self._decoding -= 1
        finally:
            self._slots.release()
            _give_memory_back()


def _give_memory_back() -> None:
    """Return the allocator's free memory to the system, where the C library can (glibc)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    with suppress(OSError, AttributeError):
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    return None


_MALLOC_TRIM: Final = _malloc_trim()


def _check_byte_size(byte_size: int, rules: AcceptanceRules) -> None:
    if byte_size <= 0:
        raise InvalidImage("image is empty")
    if byte_size > rules.max_bytes:
        size, limit = _format_megabytes(byte_size), _format_megabytes(rules.max_bytes)
        if size == limit:
            # Just over the limit reads as equal to it once rounded, so say it in bytes.
            raise InvalidImage(f"image is {byte_size:,} bytes; the limit is {rules.max_bytes:,} bytes")
        raise InvalidImage(f"image is {size} MB; the limit is {limit} MB")


def _sniffed_type(data: bytes) -> str:
    mime_type = sniff_image_type(data)
    if mime_type is None:
        found = _name_foreign_format(data)
        got = f"got {found}" if found else "the data is not a recognised image"
        raise InvalidImage(f"image must be {_ACCEPTED_NAMES}; {got}")
    return mime_type


def _read_first_frame(
    data: bytes, mime_type: str, rules: AcceptanceRules, *, reduced: bool = False
) -> Image.Image:
    """Open, check the header against the rules, then decode the first frame and turn it upright.

    `reduced`: a JPEG may be decoded at an eighth of its size (its EXIF, in the header, has
    already told how it is displayed).
    """
    with _refusing_what_pillow_rejects(rules):
        image = Image.open(BytesIO(data), formats=[_FORMAT_BY_MIME_TYPE[mime_type]])
        displayed_size = _displayed_size_from_header(image)
    check_acceptable(len(data), *displayed_size, rules)
    reduced = reduced and mime_type == "image/jpeg"
    with _refusing_what_pillow_rejects(rules):
        if reduced:
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    if image.size != displayed_size and not reduced:
        # EXIF found only after the pixels (a PNG may keep it there) turned the image: the pixel
        # count is the same, but asymmetric shape rules must see it as displayed.
        check_acceptable(len(data), *image.size, rules)
    return image


@contextmanager
def _refusing_what_pillow_rejects(rules: AcceptanceRules) -> Iterator[None]:
    """Around Pillow reading an upload: its bomb alarms and its errors about bad data become refusals."""
    try:
        with warnings.catch_warnings():
            # Pillow complains about damaged metadata (EXIF, MPO) with UserWarnings; they describe
            # the upload, not our code, and the pixels are still usable.
            warnings.simplefilter("ignore", UserWarning)
            # Pillow only warns between its cap and twice it; as an error it is refused below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as bomb:
        pillow_cap = Image.MAX_IMAGE_PIXELS
        limit = rules.max_pixels if pillow_cap is None else min(rules.max_pixels, pillow_cap)
        raise InvalidImage(f"image has too many pixels; the limit is {limit:,}") from bomb
    except _DAMAGED_DATA_ERRORS as damage:
        raise InvalidImage("image data is truncated or corrupt") from damage


def _displayed_size_from_header(image: Image.Image) -> tuple[int, int]:
    """Width and height once turned upright, as far as the metadata read so far tells."""
    # Only EXIF already in the header is consulted: asked for EXIF it has not met yet, a PNG
    # decodes all of its pixels to look for it, which is what the header check must come before.
    if "exif" not in image.info:
        return image.size
    width, height = image.size
    if image.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURN_ORIENTATIONS:
        return height, width
    return width, height


def _rgb_pixels(image: Image.Image) -> NDArray[np.uint8]:
    """Any Pillow image as H x W x 3 uint8 sRGB, transparency flattened onto mid-grey."""
    if image.mode in _WIDE_GREY_MODES:
        return _wide_grey_to_rgb(image)
    if image.mode == "La":
        # Pillow has no direct path from premultiplied La to RGBA.
        image = image.convert("LA")
    if image.mode == "P" or image.has_transparency_data:
        # Through RGBA every kind of transparency (alpha band, tRNS colour, palette alpha) becomes
        # one alpha band, before colour management, which would drop a tRNS colour.
        image = image.convert("RGBA")
    image = _to_srgb(image)
    if image.mode == "RGBA":
        return _flatten_onto_grey(np.asarray(image))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def _wide_grey_to_rgb(image: Image.Image) -> NDArray[np.uint8]:
    """16-bit, 32-bit integer or float greyscale as RGB: 16 bits scaled to 8, float clipped."""
    values = np.asarray(image)
    if image.mode == "F":
        grey = np.rint(np.clip(np.nan_to_num(values), 0.0, 255.0)).astype(np.uint8)
    else:
        wide = np.clip(values, 0, 65535).astype(np.uint32)
        # Rounded division by 257 maps 0..65535 onto 0..255 exactly at both ends.
        grey = ((wide + 128) // 257).astype(np.uint8)
    rgb = np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    transparent_value = image.info.get("transparency")
    if isinstance(transparent_value, int):
        rgb[values == transparent_value] = _BACKGROUND_GREY
    return rgb


def _to_srgb(image: Image.Image) -> Image.Image:
    """An RGB, RGBA or CMYK image with an embedded ICC profile converted to sRGB; others unchanged."""
    icc_profile = image.info.get("icc_profile")
    if not icc_profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.getOpenProfile(BytesIO(icc_profile))
        transform = ImageCms.buildTransform(source, _srgb_profile(), image.mode, output_mode)
    except ImageCms.PyCMSError:
        # Broken profiles, and profiles for another colour space than the pixels, are common in
        # the wild; the untagged conversion is still a usable picture, so do not refuse the upload.
        return image if image.mode == output_mode else image.convert(output_mode)
    return transform.apply(image)


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _flatten_onto_grey(rgba: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Straight-alpha RGBA composited over opaque mid-grey: grey + (colour - grey) * alpha / 255."""
    alpha = rgba[:, :, 3:].astype(np.int16)
    blended = rgba[:, :, :3].astype(np.int16) - _BACKGROUND_GREY
    # |colour - grey| * alpha <= 128 * 255 fits int16; (x + 127) // 255 rounds x / 255 to nearest.
    blended *= alpha
    blended += 127
    blended //= 255
    blended += _BACKGROUND_GREY
    return blended.astype(np.uint8)


def _name_foreign_format(data: bytes) -> str | None:
    """The name of a common image (or image-like) format that is not accepted, for the message."""
    head = data[:32]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    # Two letters alone are too weak a signature for BMP; its reserved header fields are zero.
    if head.startswith(b"BM") and head[6:10] == b"\0\0\0\0":
        return "BMP"
    if head.startswith((b"II*\0", b"MM\0*")):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC"
    if head.startswith((b"\xff\x0a", b"\0\0\0\x0cJXL ")):
        return "JPEG XL"
    if head.startswith(b"%PDF-"):
        return "PDF"
    text_start = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text_start.startswith(b"<svg") or (text_start.startswith(b"<?xml") and b"<svg" in text_start):
        return "SVG"
    return None


def _format_megabytes(byte_size: int) -> str:
    text = f"{byte_size / _MEGABYTE:.1f}"
    return text.removesuffix(".0")


def _format_ratio(width: int, height: int) -> str:
    """A width:height ratio a person can read: 16:9, 1:4000, or 1:2.504 when the exact terms are long."""
    divisor = math.gcd(width, height)
    across, down = width // divisor, height // divisor
    if max(across, down) <= 100 or min(across, down) == 1:
        return f"{across}:{down}"
    if across >= down:
        return f"{_format_decimal(across / down)}:1"
    return f"1:{_format_decimal(down / across)}"


def _format_bound(aspect: float) -> str:
    """An aspect bound as the small ratio it stands for, e.g. 0.4 as 2:5."""
    ratio = Fraction(aspect).limit_denominator(100)
    return f"{ratio.numerator}:{ratio.denominator}"


def _format_decimal(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")
