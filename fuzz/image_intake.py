"""Fuzz image intake: every input is accepted or refused with InvalidInput, never anything else.

Both entry points run on each input, under the default rules and under rules loose enough that
tiny images reach the decoder: `check_image` (the cheap check at createTask) and `decode_image`
(what an engine gets), which must agree. The memory bound is the harness's RSS limit.
Seeds: the bundled sample picture, made small and written in every form intake reads.
"""

from __future__ import annotations

from io import BytesIO

from fuzz.harness import instrumented, run

with instrumented("PIL"):
    from PIL import Image, ImageCms

    from kinema.domain.errors import InvalidInput
    from kinema.media.intake import DEFAULT_RULES, AcceptanceRules, check_image, decode_image

#: Small images are what the fuzzer can afford to mutate; these let them through to the decoder.
LOOSE_RULES = AcceptanceRules(min_short_side=1, min_aspect=1 / 64, max_aspect=64, max_pixels=4_000_000)


def fuzz_one(data: bytes) -> None:
    for rules in (DEFAULT_RULES, LOOSE_RULES):
        try:
            mime_type = check_image(data, rules)
        except InvalidInput:
            mime_type = None
        try:
            decoded = decode_image(data, rules)
        except InvalidInput as refusal:
            if mime_type is not None:
                raise AssertionError(f"check_image accepted what decode_image refuses: {refusal}") from None
            continue
        if mime_type != decoded.mime_type:
            raise AssertionError(f"check_image said {mime_type}, decode_image {decoded.mime_type}")
        pixels = decoded.pixels
        if pixels.dtype.name != "uint8" or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise AssertionError(f"decoded to {pixels.dtype} {pixels.shape}, not H x W x 3 uint8")


def seeds() -> list[bytes]:
    from kinema.storage.own import read_sample

    sample = Image.open(BytesIO(read_sample("sample.jpg") or b"")).convert("RGB")
    small = sample.resize((48, 27))
    found: list[bytes] = []

    def save(image: Image.Image, image_format: str, **params: object) -> None:
        out = BytesIO()
        image.save(out, image_format, **params)
        found.append(out.getvalue())

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned a quarter
    save(small, "JPEG", quality=80)
    save(small, "JPEG", quality=60, progressive=True, exif=exif.tobytes())
    save(small.convert("CMYK"), "JPEG")
    save(small.convert("L"), "JPEG")
    save(small, "PNG")
    save(small.convert("RGBA"), "PNG", exif=exif.tobytes())
    save(small.convert("P"), "PNG")
    save(small.convert("LA"), "PNG")
    save(small.convert("I;16"), "PNG")
    save(small.convert("1"), "PNG")
    save(small, "PNG", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    save(small, "WEBP", quality=50)
    save(small.convert("RGBA"), "WEBP", lossless=True)
    save(small, "WEBP", save_all=True, append_images=[small.rotate(90)], duration=40)
    save(small, "GIF")  # a type refused by name
    return found


if __name__ == "__main__":
    run("image_intake", fuzz_one, seeds())
