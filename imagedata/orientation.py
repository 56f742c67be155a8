"""Photos the right way up: the EXIF orientation tag, which TensorFlow's decoders ignore.

A phone stores a photo as the sensor saw it and records how to turn it in the
EXIF orientation tag (274): 1 is upright, 6 means turned 90 degrees clockwise
to view, and so on. `tf.io.decode_image` reads the stored pixels and never the
tag, so a model trained on such files learns sideways photos. `convert-folder`
turns each one upright before writing it (PIL's `ImageOps.exif_transpose`,
which also drops the tag), and the ImageValidator counts records that still
carry a tag, so a dataset made some other way is caught too.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

ORIENTATION_TAG = 274
UPRIGHT = 1
JPEG_QUALITY = 95  # a turned JPEG is encoded again: high quality, full chroma


def orientation(encoded: bytes) -> int:
    """The EXIF orientation an image file records; 1 (upright) without one, or unreadable."""
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            return int(image.getexif().get(ORIENTATION_TAG, UPRIGHT))
    except (OSError, ValueError, SyntaxError):  # what PIL raises for files it cannot parse
        return UPRIGHT


def upright(encoded: bytes) -> bytes | None:
    """The image turned the way its EXIF orientation says, encoded again without the tag
    (JPEG stays JPEG; anything else becomes PNG, losslessly); None when it is upright."""
    if orientation(encoded) == UPRIGHT:
        return None
    with Image.open(io.BytesIO(encoded)) as image:
        jpeg = image.format == "JPEG"
        turned = ImageOps.exif_transpose(image)
    buffer = io.BytesIO()
    if jpeg:
        turned.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        turned.save(buffer, format="PNG")
    return buffer.getvalue()
