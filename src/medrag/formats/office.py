"""The zip inside a .docx, .pptx or .xlsx, opened only when what it inflates to is within the limits."""

import io
import zipfile

from ..errors import BadInputError, TooLargeError
from .base import Limits

# An Office file has a few dozen parts; thousands are a sign of a crafted file.
MAX_PARTS = 10_000


def check_zip(data: bytes, label: str, limits: Limits) -> None:
    """Refuse a damaged zip, or one whose parts inflate past `limits.decompressed` (a zip bomb).

    zipfile never inflates a part past the size its header declares (it stops there and checks the
    CRC), so adding up the declared sizes bounds what the parser can be made to read.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise BadInputError(f"{label}: damaged Office file ({error})") from error
    if len(parts) > MAX_PARTS:
        raise TooLargeError(f"{label}: {len(parts)} parts in the Office file; at most {MAX_PARTS} are read")
    inflated = sum(part.file_size for part in parts)
    if inflated > limits.decompressed:
        raise TooLargeError(
            f"{label}: the Office file inflates to {inflated} bytes; the limit is {limits.decompressed} "
            "(MEDRAG_MAX_DECOMPRESSED_BYTES)"
        )


def damaged(label: str, error: Exception) -> BadInputError:
    """The error for a file whose zip is fine but whose parts the format's library cannot read."""
    return BadInputError(f"{label}: damaged Office file ({type(error).__name__}: {error})")
