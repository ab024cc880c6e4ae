"""Downloading dataset files so that a flaky network or a bad mirror never breaks a lesson.

A course runs on many machines: classroom Wi-Fi drops, laptops sleep mid-download, mirrors go
stale. The rules here follow from that:

- Bytes arrive in ``<dest>.part`` and only a file whose size and sha256 match the recorded
  values is renamed (``os.replace``, atomic) to ``<dest>``. A half or wrong file is therefore
  never at ``dest``, where a dataset loader would trust it.
- An interrupted download keeps its ``.part`` and the next attempt asks only for the missing
  bytes (an HTTP ``Range`` request), within one call (``retries``) or in a later run.
- A file that fails its checksum is deleted, never used, and the error says so and what to do.
- ``TLCOURSE_MIRROR`` points every download at a classroom mirror laid out like the course's
  data directory (see :func:`mirror_url`).
- Every wait is bounded: :data:`CONNECT_TIMEOUT_S` for a connection, :data:`READ_TIMEOUT_S` for
  the server's answer and for each next block of bytes (``TLCOURSE_CONNECT_TIMEOUT`` and
  ``TLCOURSE_READ_TIMEOUT`` override them). A server that has not answered once and then times
  out is not asked again in the same call, so a mirror that accepts connections but never
  replies costs one timeout, not one per file and retry (minutes, for thousands of files).

``requests`` speaks HTTP (separate connect and read timeouts, redirects, proxies, TLS) and
``tqdm`` draws the progress bars. Why not pooch, which scikit-image and SciPy fetch their data
with (``pooch.retrieve(url, known_hash="sha256:...")``)? Its model is "download into a
temporary file, verify, move; delete the temporary file on any failure", and what is kept here
is what that model cannot do:

- resuming: pooch deletes the partial bytes on any failure, and its ``HTTPDownloader`` writes
  the body from byte 0 whatever the status, so a ``Range`` request is of no use to it. Even
  with our own downloader in front, ``pooch.retrieve`` (tried: 13 more lines than
  :func:`_put_in_place`) deletes a verified download when the process dies before its rename.
- a wrong file at ``dest`` is deleted at once; pooch leaves it there until a good one arrives.
- retries: pooch asks again after a checksum failure and after a 404, with fixed 1 to 10 s
  waits; here only network failures and 408, 425, 429 and 5xx answers are retried.
- bounded waits: requests (which pooch uses too) bounds them; naming the host and not asking
  a silent one again, and giving up on a dataset after its first files all failed
  (:func:`download_many`), are ours. pooch fetches one file at a time.
- a ``file://`` mirror (pooch knows http, ftp, sftp and doi), and quiet logs (pooch writes a
  line per file to stderr: 2,250 for PlantVillage).
- extracting: pooch's ``Unzip`` calls ``ZipFile.extractall`` into the final folder, which
  silently rewrites dangerous names and leaves half a dataset when interrupted
  (:func:`extract_zip`).

Refusing to write into ``TLCOURSE_DATA`` is :func:`tlcourse.data.commands.fetch`'s job.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import requests
import urllib3
from tqdm.auto import tqdm

from .._archive import FILE, FOLDER, member_kind, unsafe_name
from .._hashing import sha256_file
from ..atomic import temp_dir
from .._hashing import sha256_file as _sha256_file
from ..errors import AssetNotFoundError, ChecksumError, CourseError, InvalidParameterError
from .._checks import int_at_least, is_int, is_positive_number, positive_number

__all__ = [
    "DownloadError",
    "UnsafeArchiveError",
    "download_file",
    "download_many",
    "extract_zip",
    "mirror_url",
    "timeouts",
    "CONNECT_TIMEOUT_ENV",
    "CONNECT_TIMEOUT_S",
    "MIRROR_ENV",
    "READ_TIMEOUT_ENV",
    "READ_TIMEOUT_S",
]

MIRROR_ENV = "TLCOURSE_MIRROR"
#: Seconds to wait for a server to accept a connection (``TLCOURSE_CONNECT_TIMEOUT`` overrides).
CONNECT_TIMEOUT_S = 10.0
#: Seconds to wait for the server's answer to a request, and then for each next block of the
#: body (``TLCOURSE_READ_TIMEOUT`` overrides). Not a limit on the whole download.
READ_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_ENV = "TLCOURSE_CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = "TLCOURSE_READ_TIMEOUT"
#: Seconds to wait before retry ``n`` is ``RETRY_BACKOFF_S * 2 ** (n - 1)`` (tests set it to 0).
RETRY_BACKOFF_S = 0.5
_CHUNK = 1 << 16
_USER_AGENT = "tlcourse-downloader/1 (+https://pypi.org/project/tlcourse/)"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# HTTP statuses worth asking again for: the server is busy or briefly broken, not "no such file".
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
_MIRROR_HINT = (
    f"If this machine cannot reach the internet, point {MIRROR_ENV} at a classroom mirror "
    f"(e.g. {MIRROR_ENV}=http://teacher-laptop:8000/) or unpack a classroom pack with "
    "`tlcourse unpack FILE`."
)


class DownloadError(AssetNotFoundError):
    """A file could not be fetched (no network, unreachable server, HTTP error).

    A subclass of :class:`~tlcourse.errors.AssetNotFoundError`: to the caller it means the same
    thing, the asset is not here and could not be fetched. ``failures`` lists
    ``(url, dest, exception)`` for :func:`download_many`, which reports many files at once.
    """

    def __init__(self, message: str, failures: Sequence[tuple[str, Path, BaseException]] = ()):
        super().__init__(message)
        self.failures = list(failures)


class UnsafeArchiveError(CourseError):
    """An archive member would land outside the extraction directory (absolute path, ``..``)."""


class _Truncated(Exception):
    """The server closed the connection, or went quiet, before sending the bytes it announced."""


class _RestartFromZero(Exception):
    """The partial file cannot be resumed (416, or a Content-Range that does not fit)."""


class _Refused(Exception):
    """The source answered without the file: an HTTP error status, or a mirror folder lacking it."""

    def __init__(self, reason: str, retryable: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable


class _Silent(TimeoutError):
    """The server did not answer at all in time: no connection, or no response to the request."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


# What a request can fail with on the way (asked again, up to ``retries`` times).
_NETWORK_ERRORS = (
    _Refused, _Silent, _Truncated, requests.RequestException, urllib3.exceptions.HTTPError,
    ConnectionError, TimeoutError,
)


# ---------------------------------------------------------------------------------------------
# bounded waits


def _seconds(env: str, default: float) -> float:
    value = os.environ.get(env, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not is_positive_number(seconds):
        raise InvalidParameterError(
            f"{env}={value!r} is not a positive number of seconds. Set it to e.g. "
            f"{env}={default:g}, or unset it to use the default ({default:g} s)."
        )
    return seconds


def timeouts() -> tuple[float, float]:
    """``(connect, read)`` timeouts in seconds: the environment's settings, else the defaults."""
    return (_seconds(CONNECT_TIMEOUT_ENV, CONNECT_TIMEOUT_S), _seconds(READ_TIMEOUT_ENV, READ_TIMEOUT_S))


class _Hosts:
    """Which servers answered during one download call (shared by download_many's workers).

    A server that has never answered and then times out is not asked again: retrying a mirror
    that accepts connections but never replies would cost every file its full wait.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answered: set[str] = set()
        self._silent: dict[str, _Silent] = {}

    def answered(self, host: str) -> None:
        with self._lock:
            self._answered.add(host)

    def went_silent(self, exc: _Silent) -> bool:
        """Record a timeout; True when the host never answered (so it is not asked again)."""
        with self._lock:
            if exc.host in self._answered:
                return False
            self._silent.setdefault(exc.host, exc)
            return True

    def silence(self, host: str) -> _Silent | None:
        """The timeout that made ``host`` count as silent, if it has never answered since."""
        with self._lock:
            return None if host in self._answered else self._silent.get(host)


# ---------------------------------------------------------------------------------------------
# helpers


def _short(digest: str) -> str:
    return digest[:12] + "..."


def _requote(url: str) -> str:
    """Percent-encode spaces and non-ASCII characters, leaving an already-quoted URL unchanged.

    PlantVillage file names contain spaces; ``http.client`` refuses a URL with a raw space.
    Reserved characters and ``%`` stay as they are, so quoting twice changes nothing.
    """
    return urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _check_sha256(sha256: str | None, url: str) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256.lower()):
        raise InvalidParameterError(
            f"download_file({url!r}): sha256 must be the 64 hexadecimal characters of the "
            f"file's sha256 (as printed by `sha256sum`), got {sha256!r}. Copy the value from "
            "the dataset's SHA256SUMS file (None only for an archive whose members are "
            "checked after extraction)."
        )
    return sha256.lower()


def _is_complete(path: Path, sha256: str | None, size: int | None) -> bool:
    """True when ``path`` is a regular file with the expected size (if known) and sha256
    (if known: with ``sha256=None`` a file at ``dest`` counts, as only finished downloads are
    ever renamed there)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
        return False
    return sha256 is None or sha256_file(path) == sha256


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: requests wraps urllib3's error, which wraps the socket's."""
    for _ in range(8):  # a handful of layers; never loop on a cycle
        inner = exc.__cause__ or getattr(exc, "reason", None) or (exc.args[0] if exc.args else None)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _describe(exc: BaseException) -> str:
    """A short human reason for a network failure (the wrappers around it add nothing)."""
    if isinstance(exc, (_Refused, _Silent, _Truncated)):
        return str(exc)
    exc = _root_cause(exc)
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the server"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _content_range_start(value: str | None) -> tuple[int | None, int | None]:
    """Parse ``Content-Range: bytes START-END/TOTAL`` into (START, TOTAL or None)."""
    match = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not match:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


# ---------------------------------------------------------------------------------------------
# one file


def _get(url: str, offset: int, waits: tuple[float, float], host: str) -> requests.Response:
    """GET ``url`` from byte ``offset``, its body not yet read; :class:`_Silent` on a timeout."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return requests.get(url, headers=headers, stream=True, timeout=waits)
    except requests.ConnectTimeout as exc:
        raise _Silent(f"could not connect to {host} within {waits[0]:g} s", host) from exc
    except requests.ReadTimeout as exc:  # connected, request sent, no answer
        raise _Silent(f"{host} accepted the connection but did not answer within {waits[1]:g} s", host) from exc


def _fetch_into(
    url: str,
    part: Path,
    size: int | None,
    waits: tuple[float, float],
    bar: tqdm,
    hosts: _Hosts,
) -> bool:
    """One HTTP request that appends to (or restarts) ``part``; True if it resumed old bytes.

    Raises a network exception (to be retried), :class:`_Silent` when the server did not
    answer in time, or :class:`_Truncated` when the body stops early; what arrived stays in
    ``part`` for the next attempt.
    """
    if urllib.parse.urlsplit(url).scheme == "file":
        return _copy_local(url, part, bar)
    host = urllib.parse.urlsplit(url).netloc
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        # Longer than the file can be: left by a different version of the file. Start over.
        part.unlink(missing_ok=True)
        offset = 0
    if size is not None and offset == size:
        return True  # complete .part from an earlier run: nothing to fetch, just verify
    with _get(url, offset, waits, host) as response:
        hosts.answered(host)
        status = response.status_code
        if status == 416 and offset:
            # "Range Not Satisfiable": our .part does not fit the server's file. Start over.
            part.unlink(missing_ok=True)
            raise _RestartFromZero()
        if status >= 400:
            raise _Refused(f"HTTP {status} {response.reason}", retryable=status in _RETRYABLE_STATUS)
        length_header = response.headers.get("Content-Length", "")
        length = int(length_header) if length_header.isdigit() else None
        resumed = False
        if offset and status == 206:
            start, total = _content_range_start(response.headers.get("Content-Range"))
            if start != offset or (size is not None and total is not None and total != size):
                # The server sent some other slice (or another file's size): do not splice it.
                part.unlink(missing_ok=True)
                raise _RestartFromZero()
            mode, resumed = "ab", True
        else:
            # 200 (server ignores Range, or a fresh download): the body is the whole file.
            mode, offset = "wb", 0
        expected_total = offset + length if length is not None else size
        bar.reset(total=expected_total)
        bar.update(offset)
        with open(part, mode) as out:
            quiet = f"{host} sent nothing for {waits[1]:g} s"
            _stream(response.raw, out, offset, expected_total, size, bar, quiet)
    return resumed


def _stream(raw: urllib3.HTTPResponse, out: BinaryIO, offset: int, expected: int | None,
            size: int | None, bar: tqdm, quiet: str) -> None:
    """Copy the body into ``out`` as it arrives.

    ``read1`` returns what has arrived, so a timeout or a cut connection loses no byte already
    received: the ``.part`` holds all of them and the next request resumes after the last.
    urllib3 raises ``ProtocolError`` when the body ends short of its ``Content-Length``. Stops
    early when the body outgrows the recorded ``size`` (the size check then says so).
    """
    received = 0
    while size is None or offset + received <= size:
        try:
            block = raw.read1(_CHUNK, decode_content=False)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise _Truncated(f"{quiet} after {offset + received} of {expected} bytes") from exc
        except urllib3.exceptions.ProtocolError as exc:  # closed before Content-Length was reached
            raise _Truncated(f"connection closed after {offset + received} of {expected} bytes") from exc
        if not block:
            break
        out.write(block)
        received += len(block)
        bar.update(len(block))


def _copy_local(url: str, part: Path, bar: tqdm) -> bool:
    """A ``file://`` URL (a mirror that is a folder): copied whole, as there is no network to
    lose; a missing file is refused like an HTTP 404."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    try:
        src = open(source, "rb")
    except OSError as exc:
        raise _Refused(f"{source}: {exc.strerror or exc}") from None
    with src, open(part, "wb") as out:
        bar.reset(total=os.fstat(src.fileno()).st_size)
        while block := src.read(_CHUNK):
            out.write(block)
            bar.update(len(block))
    return False


def download_file(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None,
    size: int | None = None,
    *,
    desc: str | None = None,
    progress: bool = True,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    retries: int = 2,
) -> Path:
    """Download ``url`` to ``dest``, resuming and retrying, and return ``dest`` once verified.

    - ``dest`` already there with the right sha256 (and ``size``): returned at once, no network.
      A wrong file at ``dest`` is deleted before downloading, so it is never used.
    - Bytes go to ``dest.part``; an existing ``.part`` (an interrupted earlier run) is resumed
      with ``Range: bytes=N-``. A server that answers 200 instead of 206 sends the whole file,
      which replaces the ``.part``; a 416, or a ``.part`` longer than ``size``, starts over.
    - Connection errors, timeouts and bodies cut short are retried ``retries`` times, each time
      asking only for the bytes still missing.
    - The result must have ``size`` bytes (if given) and ``sha256``; only then is it renamed to
      ``dest``. Otherwise the ``.part`` is deleted and :class:`ChecksumError` raised. (If the
      file was pieced together from several responses it is first fetched once more whole,
      since the pieces may come from two versions of the file.)
    - ``sha256=None`` is only for an archive with no recorded checksum whose members are
      checked after extraction (PyTorch's hymenoptera zip): then only ``size`` (if given) and
      the announced ``Content-Length`` are checked.
    - A network failure raises :class:`DownloadError` naming the URL and the reason; the
      ``.part`` is kept so that the next run resumes it.
    - ``connect_timeout`` bounds the wait for a connection, ``timeout`` the wait for the
      answer and for each next block of bytes (defaults: :func:`timeouts`). A server that
      never answered and times out is not retried: it fails after one wait, naming the host.
    """
    waits = _waits(timeout, connect_timeout)
    return _download_file(url, dest, sha256, size, desc, progress, waits, retries, _Hosts())


def _waits(read_timeout: float | None, connect_timeout: float | None) -> tuple[float, float]:
    default_connect, default_read = timeouts()
    hint = "Timeouts are in seconds, e.g. 30."
    connect = default_connect if connect_timeout is None else connect_timeout
    read = default_read if read_timeout is None else read_timeout
    # plain floats back: a socket refuses a numpy float
    return (positive_number(connect, "connect_timeout", where="download", hint=hint),
            positive_number(read, "timeout", where="download", hint=hint))


def _download_file(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None,
    size: int | None,
    desc: str | None,
    progress: bool,
    waits: tuple[float, float],
    retries: int,
    hosts: _Hosts,
) -> Path:
    dest = Path(dest)
    sha256 = _check_sha256(sha256, url)
    if size is not None and not (is_int(size) and size >= 0):
        raise InvalidParameterError(
            f"download_file({url!r}): size must be the file's length in bytes (an int >= 0) "
            f"or None when unknown, got {size!r}."
        )
    size = None if size is None else int(size)
    retries = int_at_least(retries, "retries", 0, where="download_file")
    if _is_complete(dest, sha256, size):
        return dest
    if dest.is_file():
        # A wrong file at dest (older version, damaged copy): never leave it where a loader
        # would trust it, whether or not the new download succeeds.
        dest.unlink(missing_ok=True)
    url = _requote(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urllib.parse.urlsplit(url).netloc
    failures = 0
    whole_refetch_done = False
    with tqdm(
        total=size,
        desc=desc or dest.name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
        leave=False,
    ) as bar:
        while True:
            earlier = hosts.silence(host)
            if earlier is not None:  # another file's request found this server silent
                raise _network_error(url, dest, part, earlier, 0, waits)
            try:
                # pieced: the last response appended to older bytes (so the .part holds the
                # pieces of more than one response, possibly of two versions of the file).
                pieced = _fetch_into(url, part, size, waits, bar, hosts)
            except _RestartFromZero:
                continue  # the .part is gone; the next request starts at byte 0
            except _NETWORK_ERRORS as exc:
                final = (isinstance(exc, _Refused) and not exc.retryable) or (
                    isinstance(exc, _Silent) and hosts.went_silent(exc))
                if final or failures >= retries:
                    raise _network_error(url, dest, part, exc, failures + 1, waits) from None
                failures += 1
                _backoff(failures)
                continue
            wrong = _put_in_place(part, dest, sha256, size)
            if wrong is None:
                return dest
            if pieced and not whole_refetch_done:
                whole_refetch_done = True
                continue
            raise _checksum_error(url, dest, sha256, size, *wrong)


def _put_in_place(part: Path, dest: Path, sha256: str | None, size: int | None) -> tuple[str | None, int] | None:
    """Rename ``part`` to ``dest`` if its size and sha256 match (None); else delete it and
    return its (sha256 if its size was right, size).

    pooch's ``stream_download`` does this step, but on a temporary file it deletes on any
    failure; here the bytes stay in ``part`` until this rename, so even a crash after the
    download and before the rename leaves them for the next run to verify.
    """
    got_size = part.stat().st_size
    got_sha = None
    if size is None or got_size == size:
        got_sha = None if sha256 is None else sha256_file(part)
        if got_sha == sha256:
            os.replace(part, dest)
            return None
    part.unlink(missing_ok=True)
    return got_sha, got_size


def _backoff(failures: int) -> None:
    if RETRY_BACKOFF_S > 0:
        time.sleep(RETRY_BACKOFF_S * 2 ** (failures - 1))


def _network_error(
    url: str, dest: Path, part: Path, exc: BaseException, attempts: int, waits: tuple[float, float]
) -> DownloadError:
    """``attempts`` 0: not requested, because the server was silent for another file."""
    kept = ""
    if part.exists() and part.stat().st_size > 0:
        kept = (
            f" The {part.stat().st_size:,} bytes that arrived are kept in {part}; running the "
            "same command again resumes from there."
        )
    tries = "not requested" if attempts == 0 else "1 attempt" if attempts == 1 else f"{attempts} attempts"
    reason = _describe(exc) + (" on an earlier request" if attempts == 0 else "")
    silent = ""
    if isinstance(exc, _Silent):
        silent = (
            f" A server that has not answered is not asked again; the waits were {waits[0]:g} s to "
            f"connect ({CONNECT_TIMEOUT_ENV}) and {waits[1]:g} s for an answer ({READ_TIMEOUT_ENV}): "
            "raise them on a very slow link."
        )
    return DownloadError(
        f"Could not download {url} to {dest} ({tries}): {reason}.{kept}{silent} Check the "
        f"network connection and try again. {_MIRROR_HINT}"
    )


def _checksum_error(
    url: str,
    dest: Path,
    sha256: str | None,
    size: int | None,
    got_sha: str | None,
    got_size: int,
) -> ChecksumError:
    if got_sha is None or sha256 is None:
        what = f"{got_size:,} bytes, expected {size:,}"
    else:
        what = f"sha256 {_short(got_sha)}, expected {_short(sha256)}"
    mirror = os.environ.get(MIRROR_ENV)
    source = (
        f"The mirror ({MIRROR_ENV}={mirror}) may hold a corrupt or different copy: ask whoever "
        f"runs it, or unset {MIRROR_ENV} to use the original source."
        if mirror
        else f"If it fails again the source may be corrupt or changed: set {MIRROR_ENV} to a "
        "mirror that has the course's copy, or unpack a classroom pack (`tlcourse unpack FILE`)."
    )
    return ChecksumError(
        f"The download of {url} for {dest.name} did not match its recorded size and sha256: got {what}. "
        f"The downloaded file was deleted and not used ({dest} was not written). Try again "
        f"(a transfer can be damaged on the way). {source}"
    )


# ---------------------------------------------------------------------------------------------
# many files


def download_many(
    items: Sequence[tuple[str, str | os.PathLike, str | None, int | None]],
    desc: str | None = None,
    *,
    progress: bool = True,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    retries: int = 2,
    workers: int = 4,
    show_failures: int = 5,
    give_up_after: int = 8,
) -> list[Path]:
    """Download many ``(url, dest, sha256, size)`` files with one progress bar over files.

    Made for datasets of many small files (PlantVillage: 2,250 JPEGs), where one bar per file
    would flood a notebook and one request at a time would be slow: ``workers`` downloads run
    at once. Files already present and verified are skipped without a request. Every file is
    attempted even when some fail; then one :class:`DownloadError` says how many failed and
    shows the first ``show_failures`` (``.failures`` has them all). Returns the destinations
    in the order of ``items``.

    One exception to "every file is attempted": when the first ``give_up_after`` files all
    fail for a reason other than a checksum (no network, unknown host, server down), the rest
    are not tried. Offline, 2,250 doomed requests would otherwise keep a learner waiting for a
    quarter of an hour before saying what one request already showed. Likewise a server that
    times out before ever answering is not asked again for the other files (see
    :func:`download_file`).
    """
    waits = _waits(timeout, connect_timeout)
    hosts = _Hosts()
    entries = [(url, Path(dest), sha, size) for url, dest, sha, size in items]
    seen: dict[Path, str] = {}
    for url, dest, _, _ in entries:
        key = dest.resolve()
        if key in seen:
            raise InvalidParameterError(
                f"download_many: {dest} appears twice (for {seen[key]} and {url}); each "
                "destination must be listed once."
            )
        seen[key] = url
    workers = int_at_least(workers, "workers", 1, where="download_many")
    errors: dict[int, BaseException] = {}
    succeeded = 0
    gave_up = False
    with tqdm(total=len(entries), desc=desc or "files", unit="file", disable=not progress) as bar:

        def one(index: int) -> None:
            url, dest, sha, size = entries[index]
            _download_file(url, dest, sha, size, None, False, waits, retries, hosts)

        pool = ThreadPoolExecutor(max_workers=min(workers, max(len(entries), 1)))
        try:
            futures = {pool.submit(one, i): i for i in range(len(entries))}
            for future in as_completed(futures):
                exc = future.exception()
                if exc is not None:
                    if not isinstance(exc, (CourseError, OSError)):
                        raise exc  # a bug, not a download problem: show it as it is
                    errors[futures[future]] = exc
                    bar.set_postfix(failed=len(errors))
                else:
                    succeeded += 1
                bar.update(1)
                if (not succeeded and len(errors) >= give_up_after
                        and not any(isinstance(e, ChecksumError) for e in errors.values())):
                    gave_up = True
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if errors:
        failures = [(entries[i][0], entries[i][1], errors[i]) for i in sorted(errors)]
        raise _many_error(failures, len(entries), show_failures, gave_up=gave_up)
    return [dest for _, dest, _, _ in entries]


def _many_error(
    failures: list[tuple[str, Path, BaseException]], total: int, show: int, gave_up: bool = False
) -> DownloadError:
    kinds = {type(exc).__name__ for _, _, exc in failures}
    if gave_up:
        hosts = sorted({urllib.parse.urlsplit(url).netloc or url for url, _, _ in failures})
        first = (
            f"The first {len(failures)} of {total:,} files could not be downloaded from "
            f"{', '.join(hosts)} ({', '.join(sorted(kinds))}) and none succeeded, so the source looks unreachable "
            f"from this machine: the other {total - len(failures):,} were not tried. Files "
            "already in place were kept. Check the network and run the same command again."
        )
    else:
        first = (
            f"{len(failures):,} of {total:,} files could not be downloaded "
            f"({', '.join(sorted(kinds))}); the other {total - len(failures):,} are in place and "
            "verified. Run the same command again to fetch only the missing ones."
        )
    lines = [first]
    for url, dest, exc in failures[:show]:
        reason = str(exc).split(". ")[0] if isinstance(exc, CourseError) else _describe(exc)
        lines.append(f"  - {dest.name} <- {url}: {reason}")
    if len(failures) > show:
        lines.append(f"  ... and {len(failures) - show:,} more.")
    lines.append(_MIRROR_HINT)
    return DownloadError("\n".join(lines), failures)


# ---------------------------------------------------------------------------------------------
# archives


def _member_path(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath:
    """The relative path of a zip member; UnsafeArchiveError if it could escape or is a link."""
    name = info.filename.removesuffix("/") if info.is_dir() else info.filename
    reason = unsafe_name(name)
    if reason is not None:
        raise UnsafeArchiveError(
            f"{archive} contains the member {info.filename!r}, which could be written outside "
            f"the extraction folder ({reason}). Nothing was extracted. This is not an archive "
            f"the course expects: delete {archive} and download it again, and if it happens "
            "again report the URL it came from."
        )
    kind = member_kind(info)
    if kind not in (FILE, FOLDER):
        raise UnsafeArchiveError(
            f"{archive} contains {kind}, {info.filename!r}; the course's archives hold plain "
            f"files only. Nothing was extracted. Delete {archive} and download it again."
        )
    return PurePosixPath(name)


def extract_zip(
    archive: str | os.PathLike,
    dest_dir: str | os.PathLike,
    members_prefix: str | None = None,
) -> Path:
    """Extract ``archive`` into ``dest_dir`` safely and all at once; return ``dest_dir``.

    Why not ``ZipFile.extractall``: it silently rewrites dangerous names, and an interrupted
    run leaves half a dataset that looks complete. Here every member is checked first (an
    absolute path, ``..`` or a symbolic link refuses the whole archive), the files go to a
    temporary folder next to ``dest_dir``, and that folder is renamed into place at the end.
    An existing ``dest_dir`` is replaced only after the new one is complete.

    ``members_prefix`` (e.g. ``"hymenoptera_data/"``) keeps only members under that folder and
    strips it, so that ``dest_dir`` holds its contents; other members (``__MACOSX/``) are
    skipped.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    prefix = None
    if members_prefix:
        prefix = PurePosixPath(members_prefix.replace("\\", "/").strip("/"))
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CourseError(
            f"Cannot open {archive} as a zip archive ({exc}). The file is damaged or not the "
            "expected download: delete it and download it again."
        ) from exc
    with zf:
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        top_level: set[str] = set()
        for info in zf.infolist():
            rel = _member_path(info, archive)
            top_level.add(rel.parts[0])
            if prefix is not None:
                if rel.parts[: len(prefix.parts)] != prefix.parts:
                    continue
                rel = PurePosixPath(*rel.parts[len(prefix.parts):]) if len(rel.parts) > len(
                    prefix.parts
                ) else PurePosixPath()
                if not rel.parts:
                    continue
            plan.append((info, rel))
        if prefix is not None and not plan:
            raise CourseError(
                f"{archive} has nothing under {members_prefix!r}; its top-level entries are "
                f"{', '.join(sorted(top_level)) or '(none)'}. The archive is not the expected "
                "one: delete it and download it again."
            )
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        needed = sum(info.file_size for info, _ in plan)
        free = shutil.disk_usage(dest_dir.parent).free
        if needed > free:
            raise CourseError(
                f"Extracting {archive} needs {needed / 1e6:,.1f} MB but {dest_dir.parent} has "
                f"{free / 1e6:,.1f} MB free. Free some space or set TLCOURSE_CACHE to a "
                "folder on a larger disk."
            )
        # created as mkdir would (umask applies): it becomes the dataset folder others read
        tmp = temp_dir(dest_dir.parent, prefix=f".{dest_dir.name}.", suffix=".tmp")
        try:
            root = tmp.resolve()
            for info, rel in plan:
                target = tmp.joinpath(*rel.parts)
                if not target.resolve().is_relative_to(root):  # belt and braces
                    raise UnsafeArchiveError(
                        f"{archive}: member {info.filename!r} resolves outside the extraction "
                        f"folder. Nothing was extracted. Delete {archive} and download it again."
                    )
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            _swap_into_place(tmp, dest_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest_dir


def _swap_into_place(new: Path, dest_dir: Path) -> None:
    """Rename the finished folder ``new`` to ``dest_dir``, replacing an old one if present."""
    if not dest_dir.exists():
        os.replace(new, dest_dir)
        return
    old = Path(tempfile.mkdtemp(dir=dest_dir.parent, prefix=f".{dest_dir.name}.", suffix=".old"))
    os.replace(dest_dir, old / "d")
    try:
        os.replace(new, dest_dir)
    except BaseException:
        os.replace(old / "d", dest_dir)  # put the old one back rather than leave nothing
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# mirrors


def mirror_url(default_url: str, relative_path: str) -> str:
    """The URL to download a dataset file from: ``TLCOURSE_MIRROR`` if set, else the default.

    A classroom (or CI) can serve the course's data folder once, e.g.
    ``python -m http.server -d shared/data 8000``, and set
    ``TLCOURSE_MIRROR=http://host:8000/``; every file is then fetched from
    ``<mirror>/<relative_path>`` and still checked against the same sha256. A local folder
    (``TLCOURSE_MIRROR=/mnt/share/data``) works too, as a ``file://`` URL.
    """
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return default_url
    rel = relative_path.replace("\\", "/").lstrip("/")
    if not rel or ".." in PurePosixPath(rel).parts:
        raise InvalidParameterError(
            f"mirror_url: relative_path must be a path inside the data folder such as "
            f"'plantvillage/Potato___healthy/x.jpg', got {relative_path!r}."
        )
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme not in ("http", "https", "file"):
        if Path(base).expanduser().is_dir():
            base = Path(base).expanduser().resolve().as_uri()
        else:
            raise InvalidParameterError(
                f"{MIRROR_ENV}={base!r} is neither an http(s):// or file:// URL nor an existing "
                f"folder. Set it to the mirror's base URL, e.g. {MIRROR_ENV}=http://127.0.0.1:8000/, "
                f"or unset it to download from the original sources."
            )
    if not base.endswith("/"):
        base += "/"
    return base + urllib.parse.quote(rel, safe="/")
