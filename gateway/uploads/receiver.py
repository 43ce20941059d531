"""Streams a multipart upload to a temporary file, hashing and counting as it goes.

The body is never held in memory: each chunk goes through python-multipart's
push parser straight to disk, and the upload is refused with 413 as soon as it
passes the limit (or at once, when Content-Length already says so).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from shared.errors import BadRequest, PayloadTooLarge, Unprocessable, VeilError

MAX_TEXT_FIELD_BYTES = 1024


class UnsupportedMediaType(VeilError):
    status = 415
    code = "unsupported_media_type"


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    size: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class _Collector:
    """State the parser callbacks build up: the file part goes to disk, text fields to memory."""

    def __init__(self, file_field: str, path: Path) -> None:
        self.file_field = file_field
        self.out = path.open("wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.error: VeilError | None = None
        self._reset_part()

    def _reset_part(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.header_field = b""
        self.header_value = b""
        self.part_name = ""
        self.in_file = False
        self.text = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._reset_part,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, disposition = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.part_name = disposition.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = disposition.get(b"filename")
        if self.part_name == self.file_field and raw_filename is not None:
            if self.filename is not None:
                self.error = BadRequest(f"Send exactly one '{self.file_field}' field.")
            self.filename = raw_filename.decode("utf-8", "replace")
            self.in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.in_file:
            self.out.write(chunk)
            self.digest.update(chunk)
            self.size += len(chunk)
        elif len(self.text) + len(chunk) <= MAX_TEXT_FIELD_BYTES:
            self.text += chunk
        else:
            self.error = BadRequest(f"Form field '{self.part_name}' is too long.")

    def on_part_end(self) -> None:
        if not self.in_file and self.part_name:
            self.fields[self.part_name] = self.text.decode("utf-8", "replace")


async def receive_upload(
    request: Request, file_field: str, max_bytes: int, tmp_dir: Path
) -> ReceivedUpload:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedMediaType(
            f"Send the code as multipart/form-data with a field named '{file_field}'."
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)

    # The directory exists (created at start-up); small local file operations
    # below stay synchronous, as the multipart parser's callbacks must be.
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    os.close(fd)
    path = Path(tmp_name)
    collector = _Collector(file_field, path)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(max_bytes)
                parser.write(chunk)
                if collector.error is not None:
                    raise collector.error
            parser.finalize()
        except VeilError:
            raise
        except Exception as exc:  # python-multipart's own errors on a malformed body
            raise BadRequest(
                "The multipart body is malformed.", code="malformed_multipart"
            ) from exc
        finally:
            collector.out.close()
        if collector.filename is None:
            raise Unprocessable(
                f"No file in the upload: send the code as multipart field '{file_field}'.",
                code="missing_file",
            )
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240
        raise
    return ReceivedUpload(
        path=path,
        filename=collector.filename,
        size=collector.size,
        sha256=collector.digest.hexdigest(),
        fields=collector.fields,
    )


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than the {max_bytes // (1024 * 1024)} MiB limit.",
        code="upload_too_large",
    )
