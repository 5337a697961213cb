"""Receiving an upload: a multipart body streamed straight to disk, with the size limit enforced as it arrives.

Starlette's own form parsing spools files to the system's temporary folder before the handler sees them and
has no limit on a file's size; here the body is parsed chunk by chunk with ``python-multipart``'s streaming
parser, the file part is written into the job's own folder, and the request is refused with 413 as soon as the
declared length or the bytes counted so far pass the limit. Nothing larger than one network chunk is held in
memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import StemsplitError

__all__ = ["Upload", "UploadError", "UploadTooLargeError", "UnsupportedUploadError", "receive_upload",
           "FILE_FIELD", "TEXT_FIELDS"]

FILE_FIELD = "file"
#: the form fields read besides the file; anything else is skipped (and still counted against the limit)
TEXT_FIELDS = ("targets", "mask")
_MAX_TEXT = 4096
#: bytes a multipart body may hold beyond the file itself (boundaries, part headers, the text fields)
_OVERHEAD = 64 * 1024
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


class UploadError(StemsplitError):
    """An upload the server refuses; ``status`` is the HTTP status it answers with."""

    status = 400


class UploadTooLargeError(UploadError):
    """The upload is over the size limit."""

    status = 413


class UnsupportedUploadError(UploadError):
    """The request is not a multipart form with a file."""

    status = 415


@dataclass
class Upload:
    """A received upload.

    Attributes
    ----------
    path : Path
        Where the file was written (``folder/input<suffix>``; the suffix is kept so decoders can use it).
    filename : str
        The file's name as the client gave it, without any folder part (for messages and download names only).
    size : int
        Bytes written.
    fields : dict of str to str
        The text fields among :data:`TEXT_FIELDS` that were sent.
    """

    path: Path
    filename: str
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def client_filename(raw: bytes | None) -> str:
    """The last component of a client's file name (either slash), printable, at most 200 characters."""
    text = (raw or b"").decode("utf-8", errors="replace")
    name = PureWindowsPath(PurePosixPath(text).name).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "upload"


def safe_suffix(filename: str) -> str:
    """The file's extension if it is short and alphanumeric (``.mp3``), else ``""``."""
    suffix = PurePosixPath(filename).suffix.lower()
    return suffix if _SUFFIX.match(suffix) else ""


class _FormSink:
    """Callbacks of the streaming parser: routes the file part to disk and keeps the small text fields."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder, self.max_bytes = folder, max_bytes
        self.upload: Upload | None = None
        self.fields: dict[str, str] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._file: BinaryIO | None = None
        self._text: bytearray | None = None
        self._name = ""

    def callbacks(self) -> dict:
        """The callback table :class:`MultipartParser` takes."""
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end}

    def _part_begin(self) -> None:
        self._headers, self._file, self._text, self._name = {}, None, None, ""

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        disposition, opts = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data":
            return
        self._name = opts.get(b"name", b"").decode("utf-8", errors="replace")
        if self._name == FILE_FIELD:
            if self.upload is not None:
                raise UploadError("Send one file per job.")
            filename = client_filename(opts.get(b"filename"))
            self.upload = Upload(path=self.folder / f"input{safe_suffix(filename)}", filename=filename)
            self._file = open(self.upload.path, "wb")  # noqa: SIM115 - closed in _part_end or by close()
        elif self._name in TEXT_FIELDS:
            self._text = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise UploadTooLargeError(_too_large(self.max_bytes))
            self._file.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > _MAX_TEXT:
                raise UploadError(f"The form field {self._name!r} is too long.")

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._text is not None:
            self.fields[self._name] = self._text.decode("utf-8", errors="replace")
            self._text = None

    def close(self) -> None:
        """Close a file left open by a body that ended early."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _too_large(max_bytes: int) -> str:
    """The message for an upload over the limit."""
    return (f"The file is larger than this server accepts ({max_bytes / 2 ** 20:g} MB); "
            "start it with a larger --max-upload-mb to allow it.")


def check_declared_length(headers, max_bytes: int) -> None:
    """Refuse, before reading anything, a body whose ``Content-Length`` already passes the limit.

    Parameters
    ----------
    headers : Mapping
        The request headers (case-insensitive names).
    max_bytes : int
        Largest file accepted; the body may hold a little more (multipart framing and text fields).
    """
    declared = headers.get("content-length")
    if declared is None:
        return
    try:
        n = int(declared)
    except ValueError:
        raise UploadError("The request's Content-Length is not a number.") from None
    if n > max_bytes + _OVERHEAD:
        raise UploadTooLargeError(_too_large(max_bytes))


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` content type, or :class:`UnsupportedUploadError`."""
    kind, opts = parse_options_header(content_type)
    boundary = opts.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UnsupportedUploadError(
            f"Send the song as multipart/form-data with the audio in the field {FILE_FIELD!r}.")
    return boundary


async def receive_upload(headers, body: AsyncIterator[bytes], folder: Path, *, max_bytes: int) -> Upload:
    """Stream a multipart upload into ``folder``, enforcing ``max_bytes`` while it arrives.

    Parameters
    ----------
    headers : Mapping
        Request headers (``content-type``, ``content-length``).
    body : async iterator of bytes
        The request body as it arrives (``request.stream()``).
    folder : Path
        An existing folder the file is written into (as ``input<suffix>``).
    max_bytes : int
        Largest file accepted.

    Returns
    -------
    Upload
        The file written and the text fields.

    Raises
    ------
    UploadTooLargeError
        The declared length or the bytes received pass the limit (the partial file is removed).
    UnsupportedUploadError
        Not a multipart form.
    UploadError
        No file, an empty file, several files, a malformed body.
    """
    check_declared_length(headers, max_bytes)
    boundary = multipart_boundary(headers.get("content-type"))
    sink = _FormSink(folder, max_bytes)
    parser = MultipartParser(boundary, sink.callbacks())
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes + _OVERHEAD:
                raise UploadTooLargeError(_too_large(max_bytes))
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        sink.close()
        _remove(sink.upload)
        raise
    except Exception as e:  # the parser's own errors carry no type worth telling apart
        sink.close()
        _remove(sink.upload)
        raise UploadError(f"The upload is not a well-formed multipart form ({type(e).__name__}).") from None
    sink.close()
    if sink.upload is None:
        raise UploadError(f"No file in the upload: send the audio in the form field {FILE_FIELD!r}.")
    sink.upload.fields = sink.fields
    return sink.upload


def _remove(upload: Upload | None) -> None:
    """Delete a partly written upload."""
    if upload is not None:
        upload.path.unlink(missing_ok=True)
