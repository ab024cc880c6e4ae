"""Downloading dataset files so that a flaky network or a bad mirror never breaks a lesson.

A course runs on many machines: classroom Wi-Fi drops, laptops sleep mid-download, mirrors go
stale. pooch (the download-and-cache library scikit-image and SciPy fetch their data with)
does the bookkeeping here, as it does for them:

- the registry: a :class:`pooch.Pooch` per dataset (:func:`dataset_pooch`) maps each file of
  the dataset's manifest to its sha256, and one per single file (:func:`download_file`, as
  ``pooch.retrieve`` does);
- where a file comes from: the recorded source, or ``TLCOURSE_MIRROR`` as the pooch's
  ``base_url`` (a classroom mirror laid out like the course's data folder);
- the cache: a file already there with the right sha256 is returned without a request
  (``Pooch.fetch``); a new one is verified on a temporary name and only then moved to its
  place, so a wrong file is never where a loader would trust it.

What pooch lacks is kept, each piece as small as it could be made and plugged into pooch as its
``downloader=`` (:class:`_Resumable`):

- resuming: bytes arrive in ``<dest>.part``, which outlives a failed or interrupted call, and
  the next attempt asks only for the missing bytes (``Range``). pooch's own downloaders write
  into a temporary file that it deletes on any failure, from byte 0 whatever the status.
- bounded waits that name the host: :data:`CONNECT_TIMEOUT_S` for a connection,
  :data:`READ_TIMEOUT_S` for the answer and each next block (``TLCOURSE_CONNECT_TIMEOUT``,
  ``TLCOURSE_READ_TIMEOUT``). A server that never answered and times out is not asked again
  in the same call: a mirror that accepts connections but never replies costs one timeout,
  not one per file and retry.
- retries only for network failures and 408, 425, 429 and 5xx answers (pooch's
  ``retry_if_failed`` asks again after a 404 and a checksum failure too; it is left at 0).
- a ``file://`` mirror (pooch knows http, ftp, sftp and doi), and files that follow the umask
  (pooch's temporary file, which becomes the dataset file, is private: 0600).
- many files at once (:func:`fetch_files`: PlantVillage has 2,250), giving up when the first
  ones all fail; pooch fetches one file at a time.
- a wrong file at ``dest`` is deleted when pooch finds it wrong, not left until a good one
  arrives; a recorded size is checked too (pooch checks only the hash, and an unchecksummed
  archive has none).
- safe extraction (:func:`extract_zip`): pooch's ``Unzip`` calls ``ZipFile.extractall`` into
  the final folder, which silently rewrites dangerous names and leaves half a dataset when
  interrupted.

pooch writes a line per file to stderr (2,250 for PlantVillage): its logger is set to warnings.
pooch's ``env=`` names a cache folder, not a mirror, and the course's cache is
``TLCOURSE_CACHE/data``, so the folder is passed in. Refusing to write into ``TLCOURSE_DATA``
is :func:`tlcourse.data.commands.fetch`'s job.

Measured when the module moved onto pooch (lines of code, without docstrings and comments):
574 before, 577 after, and ``commands.py`` 137 before, 132 after. pooch took over what it
does well (the check of a file already present, verify-then-move, joining the mirror's URL);
plugging the downloader in costs about as much (:func:`_hand_over`, turning pooch's
``ValueError`` into :class:`~tlcourse.errors.ChecksumError`, creating folders before threads
race on pooch's ``os.makedirs``). ``tlcourse data fetch`` and ``verify`` print the same
lines and exit with the same codes as before.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pooch
import requests
import urllib3
from tqdm.auto import tqdm

from .._archive import FILE, FOLDER, member_kind, unsafe_name
from .._checks import int_at_least, is_int, is_positive_number, positive_number
from .._hashing import sha256_file
from ..atomic import temp_dir
from ..errors import AssetNotFoundError, ChecksumError, CourseError, InvalidParameterError
from .registry import DatasetInfo, ManifestEntry

__all__ = [
    "DownloadError",
    "UnsafeArchiveError",
    "dataset_pooch",
    "download_file",
    "extract_zip",
    "fetch_files",
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

# pooch logs every file it fetches at INFO level to stderr; its warnings still show.
pooch.get_logger().setLevel(logging.WARNING)


class DownloadError(AssetNotFoundError):
    """A file could not be fetched (no network, unreachable server, HTTP error).

    A subclass of :class:`~tlcourse.errors.AssetNotFoundError`: to the caller it means the same
    thing, the asset is not here and could not be fetched. ``failures`` lists
    ``(url, dest, exception)`` for :func:`fetch_files`, which reports many files at once.
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


class _WrongFile(Exception):
    """The bytes arrived but are not the recorded file: ``got_size``, and ``got_sha`` when the
    size was right (None when the size alone told)."""

    def __init__(self, got_sha: str | None, got_size: int) -> None:
        super().__init__(got_sha, got_size)
        self.got_sha, self.got_size = got_sha, got_size


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
    """Which servers answered during one download call (shared by fetch_files' workers).

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


@dataclass(frozen=True)
class _Policy:
    """How one download call treats the network: its waits, retries and the hosts it met."""

    waits: tuple[float, float]  # (connect, read) seconds
    retries: int
    hosts: _Hosts


def _policy(read_timeout: float | None, connect_timeout: float | None, retries: int, where: str) -> _Policy:
    default_connect, default_read = timeouts()
    hint = "Timeouts are in seconds, e.g. 30."
    connect = default_connect if connect_timeout is None else connect_timeout
    read = default_read if read_timeout is None else read_timeout
    # plain floats back: a socket refuses a numpy float
    waits = (positive_number(connect, "connect_timeout", where="download", hint=hint),
             positive_number(read, "timeout", where="download", hint=hint))
    return _Policy(waits, int_at_least(retries, "retries", 0, where=where), _Hosts())


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


def _check_size(size: int | None, url: str) -> int | None:
    if size is not None and not (is_int(size) and size >= 0):
        raise InvalidParameterError(
            f"download_file({url!r}): size must be the file's length in bytes (an int >= 0) "
            f"or None when unknown, got {size!r}."
        )
    return None if size is None else int(size)


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
# one request


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


# ---------------------------------------------------------------------------------------------
# the downloader pooch calls


class _Resumable:
    """pooch's ``downloader=`` for one file: fetches ``<dest>.part`` (resumed, retried, each
    wait bounded) and hands it to pooch, which checks its sha256 and moves it to ``dest``.

    After a call, ``resumed`` says whether the last response was appended to older bytes (the
    file may then be pieced from two versions of it), and ``delivered`` that pooch got the
    bytes, so that a ``ValueError`` from ``Pooch.fetch`` is its sha256 check failing.
    """

    def __init__(self, dest: Path, size: int | None, policy: _Policy, desc: str, progress: bool) -> None:
        self.dest, self.part = dest, dest.with_name(dest.name + ".part")
        self.size, self.policy = size, policy
        self.desc, self.progress = desc, progress
        self.resumed = self.delivered = False

    def __call__(self, url: str, output_file: str, pup: pooch.Pooch) -> None:
        # pooch calls this only when dest is missing or fails its sha256: a wrong file goes
        # now, whether or not the download succeeds (pooch would leave it until it does).
        self.dest.unlink(missing_ok=True)
        with tqdm(total=self.size, desc=self.desc, unit="B", unit_scale=True, unit_divisor=1024,
                  disable=not self.progress, leave=False) as bar:
            self.resumed = self._fetch(_requote(url), bar)
        got = self.part.stat().st_size
        if self.size is not None and got != self.size:
            raise _WrongFile(None, got)
        _hand_over(self.part, output_file)
        self.delivered = True

    def _fetch(self, url: str, bar: tqdm) -> bool:
        """Request until ``part`` is whole; True if the last response resumed older bytes."""
        host = urllib.parse.urlsplit(url).netloc
        hosts, waits = self.policy.hosts, self.policy.waits
        failures = 0
        while True:
            earlier = hosts.silence(host)
            if earlier is not None:  # another file's request found this server silent
                raise _network_error(url, self.dest, self.part, earlier, 0, waits)
            try:
                return _fetch_into(url, self.part, self.size, waits, bar, hosts)
            except _RestartFromZero:
                continue  # the .part is gone; the next request starts at byte 0
            except _NETWORK_ERRORS as exc:
                final = (isinstance(exc, _Refused) and not exc.retryable) or (
                    isinstance(exc, _Silent) and hosts.went_silent(exc))
                if final or failures >= self.policy.retries:
                    raise _network_error(url, self.dest, self.part, exc, failures + 1, waits) from None
                failures += 1
                _backoff(failures)


def _hand_over(part: Path, output_file: str) -> None:
    """Give pooch the finished ``part`` under its temporary name, as a second link to the bytes.

    pooch deletes its temporary file on any failure, even an interrupt just before its move to
    ``dest``; ``part`` outlives that, so the next run verifies it instead of downloading again.
    The file also keeps ``part``'s mode (the umask's), not the 0600 of pooch's temporary file.
    """
    os.unlink(output_file)
    try:
        os.link(part, output_file)
    except OSError:  # a file system without hard links (FAT): a copy keeps the same promises
        shutil.copyfile(part, output_file)


def _fetch_one(pup: pooch.Pooch, fname: str, size: int | None, policy: _Policy,
               desc: str | None, progress: bool) -> Path:
    """``pup.fetch(fname)`` through :class:`_Resumable`; a wrong file raises ChecksumError.

    A file pieced together from several responses that fails its check is fetched once more
    whole, since the pieces may come from two versions of the file.
    """
    dest = pup.abspath / fname
    if size is not None and dest.is_file() and dest.stat().st_size != size:
        dest.unlink()  # pooch checks only the sha256, and an unchecksummed archive has none
    # pooch creates a missing folder itself, but two threads doing so at once collide
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for _ in range(2):
        downloader = _Resumable(dest, size, policy, desc or dest.name, progress)
        try:
            pup.fetch(fname, downloader=downloader)
            part.unlink(missing_ok=True)  # pooch moved the other link to dest (or dest was good)
            return dest
        except _WrongFile as exc:
            wrong = exc
        except ValueError:
            if not downloader.delivered:
                raise
            wrong = _WrongFile(sha256_file(part), part.stat().st_size)  # pooch's sha256 check
        part.unlink(missing_ok=True)
        if not downloader.resumed:
            break
    known = pup.registry[fname]
    sha256 = known.split(":")[-1] if known else None
    raise _checksum_error(_requote(pup.get_url(fname)), dest, sha256, size, wrong.got_sha, wrong.got_size)


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
# the pooches: one file, or a dataset


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

    A one-file pooch (as ``pooch.retrieve`` makes) fetched through :class:`_Resumable`:

    - ``dest`` already there with the right sha256 (and ``size``): returned at once, no network.
      A wrong file at ``dest`` is deleted before downloading, so it is never used.
    - Bytes go to ``dest.part``; an existing ``.part`` (an interrupted earlier run) is resumed
      with ``Range: bytes=N-``. A server that answers 200 instead of 206 sends the whole file,
      which replaces the ``.part``; a 416, or a ``.part`` longer than ``size``, starts over.
    - Connection errors, timeouts, bodies cut short and 408, 425, 429 and 5xx answers are
      retried ``retries`` times, each time asking only for the bytes still missing.
    - The result must have ``size`` bytes (if given) and ``sha256``; only then is it moved to
      ``dest``. Otherwise it is deleted and :class:`ChecksumError` raised. (If the file was
      pieced together from several responses it is first fetched once more whole, since the
      pieces may come from two versions of the file.)
    - ``sha256=None`` is only for an archive with no recorded checksum whose members are
      checked after extraction (PyTorch's hymenoptera zip): then only ``size`` (if given) and
      the announced ``Content-Length`` are checked.
    - A network failure raises :class:`DownloadError` naming the URL and the reason; the
      ``.part`` is kept so that the next run resumes it.
    - ``connect_timeout`` bounds the wait for a connection, ``timeout`` the wait for the
      answer and for each next block of bytes (defaults: :func:`timeouts`). A server that
      never answered and times out is not retried: it fails after one wait, naming the host.
    """
    policy = _policy(timeout, connect_timeout, retries, "download_file")
    sha256, size, dest = _check_sha256(sha256, url), _check_size(size, url), Path(dest)
    known = None if sha256 is None else f"sha256:{sha256}"
    pup = pooch.create(path=dest.parent, base_url="", registry={dest.name: known}, urls={dest.name: url})
    _fetch_one(pup, dest.name, size, policy, desc, progress)
    return dest


def dataset_pooch(info: DatasetInfo, path: str | os.PathLike) -> pooch.Pooch:
    """A pooch for dataset ``info``'s files under ``path``, each with its manifest sha256.

    Files come from ``TLCOURSE_MIRROR`` when it is set (the pooch's ``base_url``), else each
    from its recorded source (the pooch's ``urls``). A classroom (or CI) serves the course's
    data folder once, e.g. ``python -m http.server -d shared/data 8000``, and sets
    ``TLCOURSE_MIRROR=http://host:8000/``; every file is then fetched from
    ``<mirror>/<path in the data folder>`` and still checked against the same sha256. A local
    folder (``TLCOURSE_MIRROR=/mnt/share/data``) works too, as a ``file://`` URL.
    """
    registry = {entry.path: f"sha256:{entry.sha256}" for entry in info.manifest}
    mirror = _mirror_base()
    urls = {} if mirror else {entry.path: info.source_url(entry) for entry in info.manifest}
    return pooch.create(path=path, base_url=mirror, registry=registry, urls=urls)


def _mirror_base() -> str:
    """``TLCOURSE_MIRROR`` as a base URL ending in ``/`` (a folder as a ``file://`` URL); ""
    when it is not set."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return ""
    if urllib.parse.urlsplit(base).scheme.lower() not in ("http", "https", "file"):
        if not Path(base).expanduser().is_dir():
            raise InvalidParameterError(
                f"{MIRROR_ENV}={base!r} is neither an http(s):// or file:// URL nor an existing "
                f"folder. Set it to the mirror's base URL, e.g. {MIRROR_ENV}=http://127.0.0.1:8000/, "
                f"or unset it to download from the original sources."
            )
        base = Path(base).expanduser().resolve().as_uri()
    return base.rstrip("/") + "/"


def fetch_files(
    pup: pooch.Pooch,
    files: Sequence[ManifestEntry],
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
    """Fetch ``files`` of the pooch's registry into its folder; return their paths, in order.

    Each file is fetched as :func:`download_file` does and checked against its ``size`` too.
    One file gets a progress bar over its bytes and raises its own error. Many files (a
    dataset: PlantVillage has 2,250 JPEGs) get one bar over files, where one per file would
    flood a notebook, and ``workers`` downloads run at once. Files already present and
    verified are skipped without a request. Every file is attempted even when some fail; then
    one :class:`DownloadError` says how many failed and shows the first ``show_failures``
    (``.failures`` has them all).

    One exception to "every file is attempted": when the first ``give_up_after`` files all
    fail for a reason other than a checksum (no network, unknown host, server down), the rest
    are not tried. Offline, 2,250 doomed requests would otherwise keep a learner waiting for a
    quarter of an hour before saying what one request already showed. Likewise a server that
    times out before ever answering is not asked again for the other files.
    """
    policy = _policy(timeout, connect_timeout, retries, "fetch_files")
    seen: set[str] = set()
    for entry in files:
        if entry.path in seen:
            raise InvalidParameterError(
                f"fetch_files: {entry.path} appears twice; each file must be listed once."
            )
        seen.add(entry.path)
    workers = int_at_least(workers, "workers", 1, where="fetch_files")
    if len(files) == 1:
        return [_fetch_one(pup, files[0].path, files[0].size, policy, desc, progress)]
    errors: dict[int, BaseException] = {}
    succeeded = 0
    gave_up = False
    with tqdm(total=len(files), desc=desc or "files", unit="file", disable=not progress) as bar:
        pool = ThreadPoolExecutor(max_workers=min(workers, max(len(files), 1)))
        try:
            futures = {pool.submit(_fetch_one, pup, entry.path, entry.size, policy, None, False): i
                       for i, entry in enumerate(files)}
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
        failures = [(_requote(pup.get_url(files[i].path)), pup.abspath / files[i].path, errors[i])
                    for i in sorted(errors)]
        raise _many_error(failures, len(files), show_failures, gave_up=gave_up)
    return [pup.abspath / entry.path for entry in files]


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
