"""Serve a library folder over HTTP so the player works as on a web server.

A small static server on the standard library's `ThreadingHTTPServer`,
enough for a kiosk, a preview on a laptop or a test in a real browser:

- only regular files inside the library root are served: the request path is
  decoded once, `..` segments are refused, and the resolved path (symlinks
  followed) must stay inside the resolved root; names starting with '.'
  (`.lock`, a run's `.tmp-*` staging files) are never served;
- `/` is `index.html`; no folder is ever listed;
- single byte ranges are answered with 206 and `Content-Range` (a browser
  seeks a video that way); an unsatisfiable or malformed range gets 416;
  a multi-range request gets the whole file, which RFC 9110 allows;
- each response names its content type (`text/vtt; charset=utf-8` for
  captions: browsers refuse a caption track of any other type).

It only reads the library and knows nothing about how it was made. Request
logging goes to a callback, because only `cli` prints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from avatar_batch.core.errors import InputFileError, UnavailableError
from avatar_batch.library.layout import HTML_NAME

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
COPY_CHUNK_BYTES = 256 * 1024

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".mp4": "video/mp4",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".sqlite": "application/vnd.sqlite3",
}
FALLBACK_TYPE = "application/octet-stream"

_BYTE_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")

Log = Callable[[str], None]


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower(), FALLBACK_TYPE)


# --- byte ranges (pure) ----------------------------------------------------------


class RangeNotSatisfiable(ValueError):
    """The Range header asks for bytes the file does not have, or cannot be read."""


@dataclass(frozen=True)
class ByteRange:
    first: int  # inclusive
    last: int  # inclusive

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size_bytes: int) -> str:
        return f"bytes {self.first}-{self.last}/{size_bytes}"


def parse_range(header: str | None, size_bytes: int) -> ByteRange | None:
    """The one range to send for `header`, or None to send the whole file.

    None for no header, another unit (which RFC 9110 says to ignore) or
    several ranges; RangeNotSatisfiable for a malformed or unsatisfiable one.
    """
    if header is None or not header.strip():
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = _BYTE_RANGE.match(spec)
    if not match or not (match.group(1) or match.group(2)):
        raise RangeNotSatisfiable(f"malformed range {header!r}")
    first_text, last_text = match.groups()
    if not first_text:  # "-N": the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size_bytes == 0:
            raise RangeNotSatisfiable(f"empty suffix range {header!r}")
        return ByteRange(max(0, size_bytes - suffix), size_bytes - 1)
    first = int(first_text)
    last = int(last_text) if last_text else size_bytes - 1
    if last < first:
        raise RangeNotSatisfiable(f"range {header!r} ends before it starts")
    if first >= size_bytes:
        raise RangeNotSatisfiable(f"range {header!r} starts past the end ({size_bytes} bytes)")
    return ByteRange(first, min(last, size_bytes - 1))


# --- request path -> file (pure but for the final resolve) -----------------------


class Refused(Exception):
    """A request for something the server must not serve; carries the status."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status


def request_parts(raw_target: str) -> tuple[str, ...]:
    """Path segments of a request target, percent-decoded once.

    Refuses (403) a `..` segment, however it was written (`..`, `%2e%2e`),
    and (404) NUL, backslashes and names starting with '.'.
    """
    target = raw_target
    if not target.startswith("/"):  # absolute form, http://host/path (RFC 9112 3.2.2)
        split = urlsplit(target)
        if split.scheme not in ("http", "https"):
            raise Refused(HTTPStatus.NOT_FOUND, "not a path")
        target = split.path or "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    parts: list[str] = []
    for segment in unquote(path, errors="strict").split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise Refused(HTTPStatus.FORBIDDEN, "'..' in the path")
        if "\0" in segment or "\\" in segment or segment.startswith("."):
            raise Refused(HTTPStatus.NOT_FOUND, "hidden or impossible name")
        parts.append(segment)
    return tuple(parts) or (HTML_NAME,)


def locate(root: Path, raw_target: str) -> Path:
    """The file under `root` (already resolved) that the target names."""
    try:
        parts = request_parts(raw_target)
    except UnicodeDecodeError as exc:
        raise Refused(HTTPStatus.NOT_FOUND, "path is not UTF-8") from exc
    candidate = root.joinpath(*parts)
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise Refused(HTTPStatus.NOT_FOUND, f"cannot resolve: {exc}") from exc
    if not resolved.is_relative_to(root):
        raise Refused(HTTPStatus.FORBIDDEN, "leads outside the library")
    if not resolved.is_file():
        raise Refused(HTTPStatus.NOT_FOUND, "no such file")
    return resolved


# --- the server -------------------------------------------------------------------


class LibraryRequestHandler(BaseHTTPRequestHandler):
    """GET and HEAD of library files. `server.library_root` is the resolved root."""

    server_version = "avatar-batch"
    protocol_version = "HTTP/1.1"  # keep-alive: a video's range requests reuse the connection

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def log_message(self, format: str, *args) -> None:
        log = getattr(self.server, "log", None)
        if log is not None:
            log(f"{self.address_string()} {format % args}")

    def _respond(self, send_body: bool) -> None:
        try:
            assert isinstance(self.server, LibraryServer)
            path = locate(self.server.library_root, self.path)
            handle = open(path, "rb")  # noqa: SIM115 - closed by the `with` below, after the error branches
        except Refused as refused:
            self._send_error(refused.status)
            return
        except OSError:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        with handle:
            self._send_file(path, handle, send_body)

    def _send_file(self, path: Path, handle: BinaryIO, send_body: bool) -> None:
        stat = os.fstat(handle.fileno())
        size_bytes = stat.st_size
        try:
            byte_range = parse_range(self.headers.get("Range"), size_bytes)
        except RangeNotSatisfiable:
            self._send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size_bytes}"})
            return
        first, length = (0, size_bytes) if byte_range is None else (byte_range.first, byte_range.length)
        self.send_response(HTTPStatus.OK if byte_range is None else HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if byte_range is not None:
            self.send_header("Content-Range", byte_range.content_range(size_bytes))
        self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        # A rerun replaces files under the same names; always revalidate.
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if send_body:
            self._copy(handle, first, length)

    def _copy(self, handle: BinaryIO, first: int, length: int) -> None:
        handle.seek(first)
        left = length
        try:
            while left > 0:
                chunk = handle.read(min(COPY_CHUNK_BYTES, left))
                if not chunk:
                    break  # the file shrank under us; the client sees a short body
                self.wfile.write(chunk)
                left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            # Players drop connections whenever they seek; nothing to report.
            self.close_connection = True

    def _send_error(self, status: HTTPStatus, headers: dict[str, str] | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode("ascii")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class LibraryServer(ThreadingHTTPServer):
    # One thread per connection; daemon threads so a stalled client never
    # keeps the process alive after Ctrl-C.
    daemon_threads = True

    def __init__(self, root: Path, host: str, port: int, log: Log | None = None):
        self.library_root = root
        self.log = log
        super().__init__((host, port), LibraryRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


def make_server(
    root: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log: Log | None = None
) -> LibraryServer:
    """A bound server for the library at `root` (port 0: any free port).
    Call `serve_forever()` on it, and `server_close()` when done."""
    folder = Path(root)
    if not folder.is_dir():
        raise InputFileError(f"library folder {folder} does not exist. Fix: render a catalogue into it first")
    if not (folder / HTML_NAME).is_file():
        raise InputFileError(
            f"{folder} has no {HTML_NAME}, so it is not a library. Fix: render into it, "
            f"or run `avatar-batch library rebuild {folder}`"
        )
    try:
        return LibraryServer(folder.resolve(), host, port, log)
    except OSError as exc:
        raise UnavailableError(
            f"cannot listen on {host}:{port}: {exc.strerror}. Fix: choose another --port or --host"
        ) from exc
