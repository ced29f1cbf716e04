"""Reading a multipart upload without holding more than the configured limit (both services)."""

from __future__ import annotations

from fastapi import UploadFile


class UploadTooLargeError(ValueError):
    """An upload over the size limit; the message names the field and the limit (HTTP 413)."""


async def read_capped(file: UploadFile, max_bytes: int, field: str) -> bytes:
    """The bytes of ``file`` (possibly empty), refusing it once it passes ``max_bytes``.

    Reads at most ``max_bytes + 1`` bytes, so an oversize body is never held whole.
    """
    if file.size is not None and file.size > max_bytes:
        raise UploadTooLargeError(f"`{field}` is {file.size} bytes; the maximum is {max_bytes} bytes")
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLargeError(f"`{field}` is larger than the maximum of {max_bytes} bytes")
    return data
