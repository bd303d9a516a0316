"""`avatar-batch serve`: only the library's own files, byte ranges for seeking,
the right content types, and a clean stop on Ctrl-C. A real server on an
ephemeral port of 127.0.0.1, in a thread, and the real command in a process."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatar_batch.cli import app
from avatar_batch.library.serve import ByteRange, RangeNotSatisfiable, make_server, parse_range, request_parts
from tests.conftest import serving, with_sigint_ignored
from tests.hardening.projects import CLI, manifest_items


@pytest.fixture(scope="module")
def library(smoke_library: Path, tmp_path_factory) -> Path:
    """A copy of the smoke library with links planted in it, and secrets beside it."""
    root = tmp_path_factory.mktemp("served")
    copy = root / "library"
    shutil.copytree(smoke_library, copy, symlinks=True)
    (root / "secret.txt").write_text("outside the library\n")
    (copy / "out-link.txt").symlink_to(root / "secret.txt")
    (copy / "out-dir").symlink_to(root, target_is_directory=True)
    (copy / "in-link.json").symlink_to(copy / "manifest.json")
    (copy / "dangling.mp4").symlink_to(copy / "gone.mp4")
    (copy / "loop-a").symlink_to(copy / "loop-b")
    (copy / "loop-b").symlink_to(copy / "loop-a")
    (copy / ".tmp-staging").mkdir()
    (copy / ".tmp-staging" / "video.mp4").write_bytes(b"half a video")
    return copy


@pytest.fixture(scope="module")
def server(library: Path):
    with serving(library) as running:
        yield running


def request(server, target: str, method: str = "GET", headers: dict | None = None):
    """Send `target` exactly as written (no client-side normalisation)."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def first_item(library: Path) -> dict:
    return manifest_items(library)[0]


# --- ranges, as a pure function --------------------------------------------------------


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("", None),
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=990-5000", ByteRange(990, 999)),
        ("bytes = 5 - 9", ByteRange(5, 9)),
        ("BYTES=0-0", ByteRange(0, 0)),
        ("items=0-5", None),
        ("bytes=0-5,10-20", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2", "bytes=-0", "bytes=abc", "bytes=-", "bytes=1-2-3"])
def test_unsatisfiable_or_malformed_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 1000)


def test_any_range_of_an_empty_file_is_unsatisfiable():
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)


@pytest.mark.parametrize(
    "target, parts",
    [
        ("/", ("index.html",)),
        ("/index.html?x=1#top", ("index.html",)),
        ("/videos/a%20b/en/x/video.mp4", ("videos", "a b", "en", "x", "video.mp4")),
        ("/./videos//x", ("videos", "x")),
        ("http://example.org/manifest.json", ("manifest.json",)),
    ],
)
def test_request_parts(target, parts):
    assert request_parts(target) == parts


# --- over HTTP ------------------------------------------------------------------------


def test_index_and_json_with_their_types(server, library: Path):
    status, headers, body = request(server, "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert body == (library / "index.html").read_bytes()
    status, headers, body = request(server, "/manifest.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(
    "key, content_type",
    [
        ("video", "video/mp4"),
        ("captions_vtt", "text/vtt; charset=utf-8"),
        ("poster", "image/jpeg"),
        ("captions_srt", "application/x-subrip; charset=utf-8"),
    ],
)
def test_library_files_with_their_types(server, library: Path, key: str, content_type: str):
    rel = first_item(library)[key]
    status, headers, body = request(server, "/" + rel)
    assert status == 200, rel
    assert headers["Content-Type"] == content_type
    assert headers["Accept-Ranges"] == "bytes"
    assert int(headers["Content-Length"]) == len(body) == (library / rel).stat().st_size
    assert body == (library / rel).read_bytes()


def test_range_requests_let_a_player_seek(server, library: Path):
    rel = first_item(library)["video"]
    data = (library / rel).read_bytes()
    size = len(data)
    for header, first, last in [
        ("bytes=0-99", 0, 99),
        (f"bytes={size - 10}-", size - 10, size - 1),
        ("bytes=-64", size - 64, size - 1),
        ("bytes=100-10000000", 100, size - 1),
    ]:
        status, headers, body = request(server, "/" + rel, headers={"Range": header})
        assert status == 206, header
        assert headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert body == data[first : last + 1]
        assert int(headers["Content-Length"]) == last - first + 1


@pytest.mark.parametrize("header", ["bytes=99999999-", "bytes=10-5", "bytes=-0", "bytes=x-y"])
def test_bad_ranges_get_416(server, library: Path, header: str):
    rel = first_item(library)["video"]
    size = (library / rel).stat().st_size
    status, headers, _ = request(server, "/" + rel, headers={"Range": header})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{size}"


def test_head_sends_headers_only(server, library: Path):
    rel = first_item(library)["video"]
    status, headers, body = request(server, "/" + rel, method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == (library / rel).stat().st_size


@pytest.mark.parametrize(
    "target, status",
    [
        ("/../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/%2E%2E%2Fsecret.txt", 403),
        ("/videos/%2e%2e/%2e%2e/secret.txt", 403),
        ("/videos/..%2f..%2fsecret.txt", 403),
        ("/out-link.txt", 403),
        ("/out-dir/secret.txt", 403),
        ("/etc/passwd", 404),
        ("//etc/passwd", 404),
        ("/%2Fetc%2Fpasswd", 404),
        ("http://example.org/../secret.txt", 403),
        ("/dangling.mp4", 404),
        ("/loop-a", 404),
        ("/.lock", 404),
        ("/.tmp-staging/video.mp4", 404),
        ("/videos", 404),
        ("/videos/", 404),
        ("/index.html%00.mp4", 404),
        ("/%ff%fe", 404),
        ("/no-such-file.mp4", 404),
        ("/in-link.json", 200),
    ],
)
def test_only_files_inside_the_library_are_served(server, target: str, status: int):
    got, _, body = request(server, target)
    assert got == status, target
    assert b"outside the library" not in body


def test_a_stalled_client_does_not_block_others(server):
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as stalled:
        stalled.sendall(b"GET / HTTP/1.1\r\n")  # never finishes its request
        status, _, _ = request(server, "/manifest.json")
    assert status == 200


def test_binds_to_loopback_by_default(library: Path):
    server = make_server(library, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


# --- the command ------------------------------------------------------------------------


def test_serve_a_folder_that_is_not_a_library_exits_66(tmp_path: Path):
    for folder in (tmp_path / "missing", tmp_path):
        result = CliRunner().invoke(app, ["serve", str(folder), "--port", "0"])
        assert result.exit_code == 66, result.output
        assert str(folder) in result.output


def test_a_port_in_use_exits_69(library: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(library), "--port", str(port)])
    assert result.exit_code == 69, result.output
    assert "--port" in result.output


def answer_then_stop(argv: list[str], stop: signal.Signals, fetch: bool = True) -> tuple[int | None, str, str]:
    """Start `serve`, fetch one file through it (unless not `fetch`: the signal then lands
    as soon as the URL is printed), send `stop`; (exit code, stdout, stderr)."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line, line + process.stderr.read()
        if fetch:
            port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/manifest.json")
            assert connection.getresponse().status == 200
            connection.close()
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_command_answers_then_stops_cleanly(library: Path, stop):
    returncode, stdout, stderr = answer_then_stop([*CLI, "serve", str(library), "--port", "0"], stop)
    assert returncode == 0, stderr
    assert "stopped" in stdout
    assert "Traceback" not in stderr
    assert '"GET /manifest.json HTTP/1.1" 200' in stderr  # the request log


def test_ctrl_c_stops_serve_started_with_sigint_ignored(library: Path):
    """A script's `avatar-batch serve &` inherits SIGINT ignored; Ctrl-C must still stop it."""
    returncode, stdout, stderr = answer_then_stop(
        with_sigint_ignored([*CLI, "serve", str(library), "--port", "0"]), signal.SIGINT
    )
    assert returncode == 0, stderr
    assert "stopped" in stdout
    assert "Traceback" not in stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_right_after_the_url_line_is_a_clean_stop(library: Path, stop):
    """The signal lands as soon as the URL is printed, before any request."""
    returncode, stdout, stderr = answer_then_stop(
        with_sigint_ignored([*CLI, "serve", str(library), "--port", "0"]), stop, fetch=False
    )
    assert returncode == 0, stderr
    assert "stopped" in stdout
