"""Image intake: what is accepted or refused, and how every kind of accepted image becomes RGB."""

from __future__ import annotations

import struct
import warnings
import zlib
from functools import cache
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image, ImageCms, ImageFile
from tests.support.deadline import finishes_within

from kinema.domain.errors import InvalidInput
from kinema.media.intake import (
    ACCEPTED_FORMATS,
    DEFAULT_RULES,
    AcceptanceRules,
    DecodedImage,
    InvalidImage,
    _rgb_pixels,
    check_acceptable,
    check_image,
    decode_image,
    sniff_image_type,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
GREY = (128, 128, 128)
MB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ORIENTATION = 0x0112
MAKE = 0x010F


def encode(image: Image.Image, image_format: str, **params: Any) -> bytes:
    out = BytesIO()
    image.save(out, image_format, **params)
    return out.getvalue()


def solid(colour: tuple[int, ...], size: tuple[int, int] = (400, 300), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def left_and_right(left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """A 400 x 300 image, left half one colour and right half another: its orientation is visible."""
    pixels = np.empty((300, 400, 3), np.uint8)
    pixels[:, :200] = left
    pixels[:, 200:] = right
    return Image.fromarray(pixels)


def noise(width: int = 400, height: int = 300) -> Image.Image:
    """Incompressible content, so that half of the encoded file is really half of the picture."""
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def assert_close(actual: NDArray[np.uint8], expected: tuple[int, int, int], tolerance: int) -> None:
    difference = np.abs(actual.astype(int) - np.array(expected))
    assert difference.max() <= tolerance, f"{actual.tolist()} is not within {tolerance} of {expected}"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@cache
def black_one_bit_png(width: int, height: int, *, complete: bool = True) -> bytes:
    """A 1-bit greyscale PNG of zeros, built row by row so a huge one costs little time or memory.

    Incomplete, it declares its size but its compressed data stops after one row: decoding it
    fails as truncated, so refusing it for another reason shows its pixels were never decoded.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (width + 7) // 8)  # filter type 0, then the packed bits
    compressor = zlib.compressobj(9)
    if complete:
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
        end = png_chunk(b"IEND", b"")
    else:
        data, end = compressor.compress(row) + compressor.flush(zlib.Z_SYNC_FLUSH), b""
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + end


def srgb_profile_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def srgb_profile_with_red_and_green_swapped() -> bytes:
    """An RGB profile whose first channel is sRGB's green primary and whose second is its red one."""
    profile = bytearray(srgb_profile_bytes())
    (tag_count,) = struct.unpack_from(">I", profile, 128)
    entries = {}
    for index in range(tag_count):
        signature, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * index)
        entries[signature] = (132 + 12 * index, offset, size)
    red_entry, red_offset, red_size = entries[b"rXYZ"]
    green_entry, green_offset, green_size = entries[b"gXYZ"]
    struct.pack_into(">4sII", profile, red_entry, b"rXYZ", green_offset, green_size)
    struct.pack_into(">4sII", profile, green_entry, b"gXYZ", red_offset, red_size)
    return bytes(profile)


# --- Accepted formats, told by content ---------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "params", "mime_type", "tolerance"),
    [
        ("JPEG", {"quality": 95}, "image/jpeg", 3),
        ("PNG", {}, "image/png", 0),
        ("WEBP", {"lossless": True}, "image/webp", 0),
    ],
)
def test_each_accepted_format_decodes_to_rgb_uint8(
    image_format: str, params: dict[str, Any], mime_type: str, tolerance: int
) -> None:
    data = encode(left_and_right(RED, BLUE), image_format, **params)

    decoded = decode_image(data)

    assert isinstance(decoded, DecodedImage)
    assert decoded.pixels.shape == (300, 400, 3)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.flags.c_contiguous
    assert (decoded.width, decoded.height) == (400, 300)
    assert decoded.mime_type == mime_type
    assert decoded.byte_size == len(data)
    assert_close(decoded.pixels[150, 50], RED, tolerance)
    assert_close(decoded.pixels[150, 350], BLUE, tolerance)


def test_accepted_formats_map_pillow_names_to_mime_types() -> None:
    assert dict(ACCEPTED_FORMATS) == {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@pytest.mark.parametrize(
    ("image_format", "mime_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_type_is_told_by_magic_bytes(image_format: str, mime_type: str) -> None:
    assert sniff_image_type(encode(solid(RED), image_format)) == mime_type


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"RIFF\0\0\0\0WAVE", b"GIF89a", b"hello"])
def test_anything_else_sniffs_as_none(data: bytes) -> None:
    assert sniff_image_type(data) is None


@pytest.mark.parametrize(
    "image",
    [solid(RED), solid((255, 0, 0, 128), mode="RGBA"), solid((40000,), mode="I;16")],
    ids=["rgb", "rgba", "16-bit"],
)
def test_decoded_pixels_are_read_only(image: Image.Image) -> None:
    decoded = decode_image(encode(image, "PNG"))

    with pytest.raises(ValueError, match="read-only"):
        decoded.pixels[0, 0] = 0


# --- Refused types ------------------------------------------------------------------------------


def test_a_text_file_is_refused_naming_the_accepted_types() -> None:
    with pytest.raises(InvalidImage, match="JPEG, PNG or WebP") as refusal:
        decode_image(b"hello, this is not an image")

    assert "not a recognised image" in refusal.value.message
    assert refusal.value.code == 422
    assert isinstance(refusal.value, InvalidInput)


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (encode(solid(RED), "GIF"), "GIF"),
        (encode(solid(RED), "BMP"), "BMP"),
        (encode(solid(RED), "TIFF"), "TIFF"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"  <svg width='400' height='300'></svg>", "SVG"),
        (b"\0\0\0\x1cftypheic\0\0\0\0mif1heic", "HEIC"),
        (b"\0\0\0\x1cftypavif\0\0\0\0mif1avif", "AVIF"),
        (b"%PDF-1.7\n", "PDF"),
    ],
)
def test_other_image_formats_are_refused_saying_what_was_found(data: bytes, found: str) -> None:
    with pytest.raises(InvalidImage, match=f"must be JPEG, PNG or WebP; got {found}$"):
        decode_image(data)


def test_a_file_name_plays_no_part_in_the_type() -> None:
    # GIF bytes stay refused and PNG bytes stay accepted whatever the upload was called;
    # the API takes only the bytes, so there is no name to be fooled by.
    assert decode_image(encode(solid(RED), "PNG")).mime_type == "image/png"
    with pytest.raises(InvalidImage, match="GIF"):
        decode_image(encode(solid(RED), "GIF"))


# --- Size in bytes ------------------------------------------------------------------------------


def test_empty_data_is_refused() -> None:
    with pytest.raises(InvalidImage, match=r"^image is empty$"):
        decode_image(b"")


def test_oversized_data_is_refused_before_its_type_is_looked_at() -> None:
    rules = AcceptanceRules(max_bytes=1000)

    with pytest.raises(InvalidImage, match="limit is") as refusal:
        decode_image(b"not an image" * 100, rules)

    assert "JPEG" not in refusal.value.message


def test_the_byte_limit_is_stated_in_megabytes() -> None:
    with pytest.raises(InvalidImage, match=r"^image is 12\.4 MB; the limit is 10 MB$"):
        check_acceptable(int(12.4 * MB), 400, 300)


def test_one_byte_over_the_limit_is_refused_in_bytes_rather_than_as_10_mb_of_10_mb() -> None:
    with pytest.raises(InvalidImage, match=r"^image is 10,485,761 bytes; the limit is 10,485,760 bytes$"):
        check_acceptable(10 * MB + 1, 400, 300)


def test_exactly_the_byte_limit_is_accepted() -> None:
    check_acceptable(10 * MB, 400, 300)


# --- Aspect ratio and short side ----------------------------------------------------------------


def test_a_1_by_4000_png_is_refused_for_its_shape() -> None:
    data = encode(solid((0,), (1, 4000), "L"), "PNG")

    with pytest.raises(
        InvalidImage, match=r"aspect ratio 1:4000 \(1 x 4000\) is outside the allowed range 2:5 to 5:2"
    ):
        decode_image(data)


@pytest.mark.parametrize(("width", "height"), [(750, 300), (300, 750), (1000, 400), (400, 1000), (300, 300)])
def test_aspect_ratios_on_and_inside_the_bounds_are_accepted(width: int, height: int) -> None:
    check_acceptable(1000, width, height)


@pytest.mark.parametrize(("width", "height"), [(751, 300), (300, 751), (1001, 400), (400, 1001)])
def test_aspect_ratios_just_beyond_the_bounds_are_refused(width: int, height: int) -> None:
    with pytest.raises(InvalidImage, match=r"aspect ratio .* is outside the allowed range 2:5 to 5:2"):
        check_acceptable(1000, width, height)


def test_a_long_ratio_is_shown_as_a_decimal() -> None:
    with pytest.raises(InvalidImage, match=r"aspect ratio 1:2\.504 \(599 x 1500\)"):
        check_acceptable(1000, 599, 1500)


def test_a_short_side_of_299_px_is_refused() -> None:
    with pytest.raises(InvalidImage, match=r"^image short side is 299 px \(400 x 299\); at least 300 px"):
        check_acceptable(1000, 400, 299)


def test_a_short_side_of_300_px_is_accepted() -> None:
    check_acceptable(1000, 300, 300)
    check_acceptable(1000, 300, 400)


def test_a_small_image_is_refused_when_decoding() -> None:
    with pytest.raises(InvalidImage, match="short side is 200 px"):
        decode_image(encode(solid(RED, (300, 200)), "PNG"))


@pytest.mark.parametrize(("width", "height"), [(0, 300), (300, 0)])
def test_an_image_without_pixels_is_refused(width: int, height: int) -> None:
    with pytest.raises(InvalidImage, match="no pixels"):
        check_acceptable(1000, width, height)


def test_too_many_pixels_are_refused_by_check_acceptable() -> None:
    with pytest.raises(
        InvalidImage, match=r"too many pixels \(8000 x 7000 = 56,000,000\); the limit is 50,000,000"
    ):
        check_acceptable(1000, 8000, 7000)


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        AcceptanceRules(max_bytes=0)
    with pytest.raises(ValueError, match="aspect"):
        AcceptanceRules(min_aspect=3.0, max_aspect=2.0)


# --- Decompression bombs ------------------------------------------------------------------------


def test_a_modest_image_over_a_lowered_pixel_cap_is_refused_with_its_size() -> None:
    data = encode(solid(RED, (1000, 800)), "PNG")

    with pytest.raises(InvalidImage, match=r"too many pixels \(1000 x 800 = 800,000\); the limit is 500,000"):
        decode_image(data, AcceptanceRules(max_pixels=500_000))
    assert decode_image(data).pixels.shape == (800, 1000, 3)


@pytest.mark.parametrize(
    "side",
    [
        8_000,  # over our cap, under Pillow's: our own header check refuses it
        12_000,  # over Pillow's cap, under twice it: Pillow's warning, turned into a refusal
        20_000,  # over twice Pillow's cap: Pillow's DecompressionBombError, turned into a refusal
    ],
)
def test_an_image_declaring_huge_dimensions_is_refused_from_its_header(side: int) -> None:
    # The file holds a single row: had its pixels been decoded it would be refused as truncated.
    data = black_one_bit_png(side, side, complete=False)

    with pytest.raises(InvalidImage, match=r"too many pixels.*the limit is 50,000,000"):
        decode_image(data)


def test_the_bomb_builder_makes_valid_pngs_and_truncated_ones() -> None:
    decoded = decode_image(black_one_bit_png(400, 300))

    assert decoded.pixels.shape == (300, 400, 3)
    assert not decoded.pixels.any()
    with pytest.raises(InvalidImage, match="truncated"):
        decode_image(black_one_bit_png(400, 300, complete=False))


@pytest.mark.parametrize("side", [8_000, 12_000, 20_000])
def test_a_real_bomb_is_refused_quickly_without_decoding_it(
    side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = black_one_bit_png(side, side)  # up to 400 megapixels in a few tens of kilobytes
    assert len(data) < 100_000

    def refuse_to_decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the pixels of a bomb must never be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_to_decode)
    # Refused from the header alone, which takes milliseconds.
    with pytest.raises(InvalidImage, match="too many pixels"):
        finishes_within(5, lambda: decode_image(data), "refusing the bomb")


def test_pillows_bomb_warning_does_not_escape() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InvalidImage, match="too many pixels"):
            decode_image(black_one_bit_png(12_000, 12_000, complete=False))

    assert caught == []


def test_pillows_global_pixel_cap_is_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS

    with pytest.raises(InvalidImage):
        decode_image(black_one_bit_png(20_000, 20_000, complete=False))

    assert before == Image.MAX_IMAGE_PIXELS


# --- Damaged data -------------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP"])
def test_a_file_cut_in_half_is_refused_as_truncated(image_format: str) -> None:
    data = encode(noise(), image_format)

    with pytest.raises(InvalidImage, match=r"^image data is truncated or corrupt$") as refusal:
        decode_image(data[: len(data) // 2])

    assert refusal.value.__cause__ is not None


def test_right_magic_bytes_then_garbage_is_refused_as_corrupt() -> None:
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(PNG_SIGNATURE + b"this is not a PNG header at all")


def png_chunks(data: bytes) -> dict[bytes, bytes]:
    """The body of each chunk of a PNG, by chunk type (the last one wins)."""
    chunks, position = {}, len(PNG_SIGNATURE)
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        chunks[data[position + 4 : position + 8]] = data[position + 8 : position + 8 + length]
        position += 12 + length
    return chunks


def test_a_png_with_a_broken_chunk_in_its_pixels_is_refused_as_corrupt() -> None:
    # Pillow reports this one as a SyntaxError while decoding.
    chunks = png_chunks(encode(noise(40, 30), "PNG"))
    pixels = chunks[b"IDAT"]
    data = (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", chunks[b"IHDR"])
        + png_chunk(b"IDAT", pixels[:1000])
        + png_chunk(b"\x01\x02\x03\x04", pixels[1000:])
        + png_chunk(b"IEND", b"")
    )

    with pytest.raises(InvalidImage, match="truncated or corrupt") as refusal:
        decode_image(data, LENIENT_RULES)

    assert isinstance(refusal.value.__cause__, SyntaxError)


def test_a_png_with_a_malformed_animation_header_is_refused_as_corrupt() -> None:
    # Pillow reports this one as a ValueError while opening.
    chunks = png_chunks(encode(noise(40, 30), "PNG"))
    data = (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", chunks[b"IHDR"])
        + png_chunk(b"acTL", b"\0\0")
        + png_chunk(b"IDAT", chunks[b"IDAT"])
        + png_chunk(b"IEND", b"")
    )

    with pytest.raises(InvalidImage, match="truncated or corrupt") as refusal:
        decode_image(data, LENIENT_RULES)

    assert isinstance(refusal.value.__cause__, ValueError)


def _small_samples() -> list[bytes]:
    rotated = Image.Exif()
    rotated[ORIENTATION] = 6
    tiny = noise(24, 20)
    frames = [solid((255, 0, 0, 255), (24, 20), "RGBA"), solid((0, 0, 255, 100), (24, 20), "RGBA")]
    return [
        encode(tiny, "PNG"),
        encode(tiny, "JPEG", exif=rotated),
        encode(tiny, "WEBP", exif=rotated),
        encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
    ]


SMALL_SAMPLES = _small_samples()
LENIENT_RULES = AcceptanceRules(min_short_side=1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(SMALL_SAMPLES),
    changes=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4
    ),
    keep=st.floats(0.05, 1),
)
def test_damaged_data_never_lets_a_raw_pillow_error_escape(
    sample: bytes, changes: list[tuple[float, int]], keep: float
) -> None:
    damaged = bytearray(sample)
    for position, value in changes:
        damaged[int(position * len(damaged))] = value
    damaged = damaged[: max(1, int(keep * len(damaged)))]

    try:
        decoded = decode_image(bytes(damaged), LENIENT_RULES)
    except InvalidImage:
        return
    assert decoded.pixels.ndim == 3
    assert decoded.pixels.shape[2] == 3


# --- Orientation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "top", "bottom"),
    [
        (6, RED, BLUE),  # turned a quarter clockwise for display: the left edge goes to the top
        (8, BLUE, RED),  # turned a quarter anticlockwise: the left edge goes to the bottom
    ],
)
def test_exif_orientation_is_applied(
    orientation: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = encode(left_and_right(RED, BLUE), "JPEG", quality=95, exif=exif)

    decoded = decode_image(data)

    assert decoded.pixels.shape == (400, 300, 3)
    assert (decoded.width, decoded.height) == (300, 400)
    assert_close(decoded.pixels[50, 150], top, 3)
    assert_close(decoded.pixels[350, 150], bottom, 3)


def test_damaged_exif_is_tolerated_without_a_warning_escaping() -> None:
    tags = Image.Exif()
    tags[ORIENTATION] = 6
    tags[MAKE] = "a camera maker"
    exif = bytearray(tags.tobytes())
    make_entry = exif.index(struct.pack(">HH", MAKE, 2))  # tag, then type ASCII, in big-endian EXIF
    struct.pack_into(">I", exif, make_entry + 4, 10_000)  # a length running far past the data
    data = encode(left_and_right(RED, BLUE), "JPEG", quality=95, exif=bytes(exif))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = decode_image(data)

    assert caught == []
    assert decoded.pixels.shape == (400, 300, 3)
    assert_close(decoded.pixels[50, 150], RED, 3)


def test_the_shape_rules_see_the_image_as_displayed() -> None:
    portrait_only = AcceptanceRules(min_aspect=0.5, max_aspect=1.0)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    stored_landscape = left_and_right(RED, BLUE)

    decoded = decode_image(encode(stored_landscape, "JPEG", exif=exif), portrait_only)

    assert decoded.pixels.shape == (400, 300, 3)
    with pytest.raises(InvalidImage, match="aspect ratio 4:3"):
        decode_image(encode(stored_landscape, "JPEG"), portrait_only)


# --- Colour: CMYK and ICC profiles --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmyk", "high", "low"),
    [
        ((255, 0, 0, 0), (1, 2), (0,)),  # cyan: green and blue high, red low
        ((0, 255, 0, 0), (0, 2), (1,)),  # magenta
        ((0, 0, 255, 0), (0, 1), (2,)),  # yellow
    ],
)
def test_a_cmyk_jpeg_decodes_to_sensible_rgb(
    cmyk: tuple[int, int, int, int], high: tuple[int, ...], low: tuple[int, ...]
) -> None:
    data = encode(solid(cmyk, mode="CMYK"), "JPEG", quality=95)

    pixel = decode_image(data).pixels[150, 200].astype(int)

    assert all(pixel[channel] > 200 for channel in high), pixel
    assert all(pixel[channel] < 60 for channel in low), pixel


@pytest.mark.parametrize(
    "profile",
    [srgb_profile_bytes(), b"not an ICC profile at all"],
    ids=["profile-for-rgb", "garbage-profile"],
)
def test_a_cmyk_jpeg_with_an_unusable_profile_still_decodes(profile: bytes) -> None:
    data = encode(solid((255, 0, 0, 0), mode="CMYK"), "JPEG", quality=95, icc_profile=profile)

    assert_close(decode_image(data).pixels[150, 200], (0, 255, 255), 5)


def test_an_embedded_rgb_profile_is_converted_to_srgb() -> None:
    data = encode(solid(RED), "PNG", icc_profile=srgb_profile_with_red_and_green_swapped())

    # Full first channel means this profile's red primary, which is sRGB's green.
    assert_close(decode_image(data).pixels[150, 200], GREEN, 1)


def test_an_embedded_srgb_profile_leaves_colours_alone() -> None:
    data = encode(solid((10, 200, 30)), "PNG", icc_profile=srgb_profile_bytes())

    assert_close(decode_image(data).pixels[150, 200], (10, 200, 30), 1)


def test_a_profile_is_applied_to_rgba_before_flattening() -> None:
    data = encode(
        solid((255, 0, 0, 255), mode="RGBA"), "PNG", icc_profile=srgb_profile_with_red_and_green_swapped()
    )

    assert_close(decode_image(data).pixels[150, 200], GREEN, 1)


# --- Greyscale, wide samples --------------------------------------------------------------------


def test_greyscale_comes_out_as_three_equal_channels() -> None:
    gradient = np.tile(np.arange(256, dtype=np.uint8).repeat(2), (300, 1))
    data = encode(Image.fromarray(gradient), "PNG")

    pixels = decode_image(data).pixels

    assert pixels.shape == (300, 512, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pixels[:, :, channel], gradient)


def test_a_16_bit_greyscale_png_is_scaled_not_clipped() -> None:
    gradient = np.linspace(0, 65535, 400).round().astype(np.uint16)
    gradient[:4] = [0, 32896, 65535, 256]
    image = Image.fromarray(np.tile(gradient, (300, 1)))
    assert image.mode == "I;16"

    pixels = decode_image(encode(image, "PNG")).pixels

    row = pixels[0, :, 0]
    assert row[:4].tolist() == [0, 128, 255, 1]
    np.testing.assert_array_equal(row, np.rint(gradient / 257).astype(np.uint8))
    assert np.count_nonzero(row == 255) < 5, "values above 255 must not all clip to white"
    assert (pixels[:, :, 0] == pixels[:, :, 2]).all()


def test_a_transparent_value_in_16_bit_greyscale_becomes_grey() -> None:
    values = np.full((300, 400), 65535, np.uint16)
    values[:, :100] = 1000
    data = encode(Image.fromarray(values), "PNG", transparency=1000)

    pixels = decode_image(data).pixels

    assert tuple(pixels[0, 0]) == GREY
    assert tuple(pixels[0, 399]) == (255, 255, 255)


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", [0, 257, 32896, 65535, 70000, -5], [0, 1, 128, 255, 255, 0]),
        ("I;16B", [0, 257, 32896, 65535, 128, 129], [0, 1, 128, 255, 0, 1]),
        ("F", [0.0, 127.6, 255.0, 300.5, -4.0, float("nan")], [0, 128, 255, 255, 0, 0]),
    ],
)
def test_wide_greyscale_modes_are_narrowed_to_8_bits(
    mode: str, values: list[float], expected: list[int]
) -> None:
    # These modes do not come out of JPEG, PNG or WebP files, so they are checked on the converter.
    image = Image.new(mode, (len(values), 1))
    image.putdata(values)

    pixels = _rgb_pixels(image)

    assert pixels[0, :, 0].tolist() == expected
    assert (pixels[:, :, 0] == pixels[:, :, 1]).all()


def test_one_bit_images_become_black_and_white() -> None:
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)

    assert _rgb_pixels(image).tolist() == [[[0, 0, 0], [255, 255, 255]]]


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV"])
def test_other_three_band_modes_go_through_pillows_conversion(mode: str) -> None:
    image = solid(RED).convert(mode) if mode != "LAB" else Image.new("LAB", (4, 4), (54, 80, 67))

    np.testing.assert_array_equal(_rgb_pixels(image), np.asarray(image.convert("RGB")))


# --- Transparency -------------------------------------------------------------------------------


def test_rgba_is_blended_onto_mid_grey() -> None:
    pixels = np.zeros((300, 400, 4), np.uint8)
    pixels[:, :100] = (255, 0, 0, 128)  # half-transparent red
    pixels[:, 100:200] = (0, 0, 255, 255)  # opaque blue
    pixels[:, 200:300] = (10, 200, 30, 0)  # fully transparent: its colour must not show
    pixels[:, 300:] = (255, 255, 255, 64)
    data = encode(Image.fromarray(pixels), "PNG")

    decoded = decode_image(data).pixels

    # 128 + (255 - 128) * 128 / 255 = 191.75 and 128 - 128 * 128 / 255 = 63.75
    assert tuple(decoded[0, 0]) == (192, 64, 64)
    assert tuple(decoded[0, 150]) == BLUE
    assert tuple(decoded[0, 250]) == GREY
    assert tuple(decoded[0, 350]) == (160, 160, 160)  # 128 + 127 * 64 / 255 = 159.9


def test_a_palette_png_with_transparency_shows_grey_through_its_holes() -> None:
    image = Image.new("P", (400, 300), 0)
    image.putpalette([*RED, *GREEN, *BLUE])
    image.paste(1, (200, 0, 400, 300))
    image.paste(2, (0, 150, 200, 300))
    alpha_by_index = bytes([0, 255, 128])  # red entirely transparent, green opaque, blue half
    data = encode(image, "PNG", transparency=alpha_by_index)

    decoded = decode_image(data).pixels

    assert tuple(decoded[0, 0]) == GREY
    assert tuple(decoded[0, 399]) == GREEN
    assert tuple(decoded[299, 0]) == (64, 64, 192)


def test_a_palette_png_without_transparency_keeps_its_colours() -> None:
    image = Image.new("P", (400, 300), 0)
    image.putpalette([*RED, *GREEN])
    image.paste(1, (200, 0, 400, 300))

    decoded = decode_image(encode(image, "PNG")).pixels

    assert tuple(decoded[0, 0]) == RED
    assert tuple(decoded[0, 399]) == GREEN


@pytest.mark.parametrize(
    ("mode", "colour", "transparent"),
    [("L", (90,), 90), ("RGB", (1, 2, 3), (1, 2, 3))],
)
def test_a_transparent_colour_key_becomes_grey(
    mode: str, colour: tuple[int, ...], transparent: int | tuple[int, ...]
) -> None:
    image = solid(colour, mode=mode)
    image.paste(255 if mode == "L" else (255, 255, 255), (200, 0, 400, 300))
    data = encode(image, "PNG", transparency=transparent)

    decoded = decode_image(data).pixels

    assert tuple(decoded[0, 0]) == GREY
    assert tuple(decoded[0, 399]) == (255, 255, 255)


def test_greyscale_with_alpha_is_blended_onto_grey() -> None:
    image = Image.new("LA", (400, 300), (0, 0))
    image.paste((255, 255), (200, 0, 400, 300))

    decoded = decode_image(encode(image, "PNG")).pixels

    assert tuple(decoded[0, 0]) == GREY
    assert tuple(decoded[0, 399]) == (255, 255, 255)


@pytest.mark.parametrize(
    ("mode", "premultiplied", "expected"),
    [
        ("RGBa", (128, 0, 0, 128), (192, 64, 64)),  # premultiplied half-transparent red
        ("La", (128, 128), (192, 192, 192)),  # premultiplied half-transparent white
        ("PA", (0, 0), GREY),
    ],
)
def test_other_alpha_modes_are_blended_onto_grey(
    mode: str, premultiplied: tuple[int, ...], expected: tuple[int, int, int]
) -> None:
    image = Image.new(mode, (2, 2), premultiplied)

    assert_close(_rgb_pixels(image)[0, 0], expected, 1)


# --- Animation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["WEBP", "PNG"])
def test_an_animated_image_gives_its_first_frame(image_format: str) -> None:
    frames = [solid(RED), solid(BLUE), solid(GREEN)]
    data = encode(frames[0], image_format, save_all=True, append_images=frames[1:], lossless=True)
    with Image.open(BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3

    decoded = decode_image(data)

    assert decoded.pixels.shape == (300, 400, 3)
    assert tuple(decoded.pixels[150, 200]) == RED


def test_the_default_rules_are_the_documented_ones() -> None:
    documented = AcceptanceRules(
        max_bytes=10 * MB, min_short_side=300, min_aspect=0.4, max_aspect=2.5, max_pixels=50_000_000
    )

    assert documented == DEFAULT_RULES


@pytest.mark.parametrize(
    "data",
    [
        encode(noise(), "JPEG")[:3000],
        encode(noise(), "PNG")[:3000],
        encode(noise(), "WEBP")[:2000],
        PNG_SIGNATURE + b"this is not a PNG header at all",
        b"just some text, named .png",
        black_one_bit_png(20_000, 20_000, complete=False),
        encode(solid(GREY, (1, 4000)), "PNG"),
        encode(solid(GREY, (600, 200)), "JPEG"),
        b"",
    ],
    ids=["jpeg cut", "png cut", "webp cut", "garbage", "text", "bomb", "1x4000", "3:1", "empty"],
)
def test_the_quick_check_refuses_what_decoding_refuses_with_the_same_words(data: bytes) -> None:
    with pytest.raises(InvalidInput) as decoding:
        decode_image(data)
    with pytest.raises(InvalidInput) as checking:
        check_image(data)
    assert checking.value.message == decoding.value.message


@pytest.mark.parametrize(
    ("image_format", "mime_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_the_quick_check_accepts_good_images_and_names_their_type(image_format: str, mime_type: str) -> None:
    assert check_image(encode(noise(), image_format)) == mime_type
