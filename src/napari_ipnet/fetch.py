"""``napari-ipnet fetch-weights``: download the original IPNet weights.

The released IPNet checkpoints ``I_e290.pth`` / ``P_e290.pth`` (Oh et al., CVPR 2019)
are licensed CC BY-NC-SA 4.0: non-commercial use only. They are never bundled with
this package; this command downloads them, after the user accepts that licence, into
the per-user cache (``weights.cache_dir() / "ipnet-paper"``) or a chosen folder.

Safety of the download:

- the licence must be accepted (``--yes``, an interactive ``y``, or
  ``accept_license=True`` in Python);
- each file is written to ``NAME.part`` and moved into place with ``os.replace`` only
  once it is complete and checked; on any failure or interruption (Ctrl-C, and
  SIGTERM or SIGHUP: handlers are installed while a file downloads, then the
  previous ones are restored and the signal delivered to them) the ``.part`` file is
  deleted, so no half-written file is ever left;
- the SHA-256 of each file is recorded in ``checksums.json`` on first download and
  verified on every later run and re-download: a mismatch is an error and the new file
  is not installed (the previous one stays untouched);
- a file already present with the recorded checksum is not downloaded again;
- after download the file is loaded as a state dict and matched against the
  architecture (``verify_load``), unless switched off.

This module imports neither torch nor the networks until the load check runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["fetch_weights", "FetchError", "LicenseNotAcceptedError", "ChecksumMismatchError", "LICENSE_NOTICE"]

#: Download addresses published in the README of the authors' demo (seoungwugoh/ivs-demo).
PAPER_URLS: dict[str, str] = {
    "I_e290.pth": "https://www.dropbox.com/s/khx9hmtnqbzg634/I_e290.pth?dl=1",
    "P_e290.pth": "https://www.dropbox.com/s/89heglbglig0g04/P_e290.pth?dl=1",
}
#: Which network each file holds (for the load check).
PAPER_PARTS: dict[str, str] = {"I_e290.pth": "interaction", "P_e290.pth": "propagation"}
MODELS = ("ipnet-paper",)
URL_BASE_ENV = "NAPARI_IPNET_PAPER_URL_BASE"
CHECKSUM_FILE = "checksums.json"
TIMEOUT_S = 60.0
_CHUNK = 1 << 20

LICENSE_NOTICE = """\
========================================================================
 NON-COMMERCIAL LICENCE NOTICE
 The original IPNet weights (I_e290.pth, P_e290.pth; Oh, Lee, Xu, Kim,
 "Fast User-Guided Video Object Segmentation by Interaction-and-
 Propagation Networks", CVPR 2019) are licensed under
 CC BY-NC-SA 4.0 (Creative Commons Attribution-NonCommercial-
 ShareAlike 4.0): https://creativecommons.org/licenses/by-nc-sa/4.0/
 You may use them for NON-COMMERCIAL purposes only, must credit the
 authors, and must share derivatives under the same licence.
 They are not part of napari-ipnet (BSD-3-Clause) and are downloaded
 from the authors' published addresses onto this computer only.
========================================================================"""


class FetchError(RuntimeError):
    """A download failed, was incomplete, or produced an unusable file."""


class LicenseNotAcceptedError(FetchError, PermissionError):
    """The non-commercial licence of the weights was not accepted."""


class ChecksumMismatchError(FetchError):
    """A file's SHA-256 differs from the one recorded on its first download."""


# ---------------------------------------------------------------------- helpers
def default_dir(name: str = "ipnet-paper") -> Path:
    """``weights.cache_dir() / name`` (imports ``napari_ipnet.weights``, hence torch)."""
    from .weights import cache_dir

    return cache_dir() / name


def paper_urls(urls: Mapping[str, str] | str | None = None) -> dict[str, str]:
    """File name -> address.

    ``urls`` may be a mapping (file name -> address) or a base address to which the
    file names are appended; without it ``$NAPARI_IPNET_PAPER_URL_BASE`` is used when
    set, else the published addresses.
    """
    if urls is None:
        urls = os.environ.get(URL_BASE_ENV) or None
    if urls is None:
        return dict(PAPER_URLS)
    if isinstance(urls, str):
        base = urls.rstrip("/")
        return {fname: f"{base}/{fname}" for fname in PAPER_URLS}
    unknown = set(urls) - set(PAPER_URLS)
    missing = set(PAPER_URLS) - set(urls)
    if unknown or missing:
        raise ValueError(
            f"urls must map exactly {sorted(PAPER_URLS)} to addresses; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    return {fname: str(urls[fname]) for fname in PAPER_URLS}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_checksums(folder: Path) -> dict[str, dict]:
    """The recorded checksums of ``folder`` (``{}`` when none were recorded)."""
    path = Path(folder) / CHECKSUM_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FetchError(
            f"cannot read the recorded checksums {path} ({err}); fix or delete that file "
            "(deleting it forgets the recorded checksums)"
        ) from err
    if not isinstance(data, dict):
        raise FetchError(f"{path} is not a checksum record (expected a JSON object); fix or delete it")
    out = {}
    for fname, entry in data.items():
        if isinstance(entry, str):
            entry = {"sha256": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise FetchError(f"{path}: the entry for {fname!r} has no 'sha256'; fix or delete that file")
        out[fname] = entry
    return out


def _write_checksums(folder: Path, checksums: Mapping[str, dict]) -> None:
    path = Path(folder) / CHECKSUM_FILE
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_text(json.dumps(dict(sorted(checksums.items())), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _progress_bar(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
        disable=not enabled, leave=True, file=sys.stderr,
    )


def _looks_like_checkpoint(path: Path) -> bool:
    """A PyTorch file starts with a pickle opcode (legacy format) or a zip header."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head[:1] == b"\x80" or head == b"PK\x03\x04"


def _download(url: str, part: Path, desc: str, progress: bool, timeout: float) -> tuple[str, int]:
    """Stream ``url`` into ``part``; return (sha256, size). Raises FetchError."""
    request = urllib.request.Request(url, headers={"User-Agent": "napari-ipnet-fetch-weights"})
    h = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            with open(part, "wb") as fh, _progress_bar(total, desc, progress) as bar:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    h.update(block)
                    size += len(block)
                    bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
    except urllib.error.HTTPError as err:
        raise FetchError(f"download of {desc} failed: HTTP {err.code} {err.reason} from {url}") from err
    except urllib.error.URLError as err:
        raise FetchError(
            f"cannot reach {url} ({err.reason}); check the network connection, or download "
            f"{desc} in a browser and place it in {part.parent}"
        ) from err
    except (OSError, ValueError, http.client.HTTPException) as err:  # timeouts, resets, disk full
        raise FetchError(f"download of {desc} from {url} failed: {type(err).__name__}: {err}") from err
    if total is not None and size != total:
        raise FetchError(
            f"download of {desc} is incomplete: received {size} of {total} bytes from {url} "
            "(connection closed early); nothing was installed, run the command again"
        )
    if size == 0:
        raise FetchError(f"download of {desc} from {url} is empty; nothing was installed")
    return h.hexdigest(), size


def verify_paper_file(path: Path, fname: str) -> None:
    """Load ``path`` as a state dict and match it against the network it belongs to.

    Raises FetchError naming the file and the problem. Imports torch.
    """
    from .model.networks import InteractionNet, ModelConfig, PropagationNet
    from .weights import WeightsError, _load_into, _strip_prefix, _torch_load

    part = PAPER_PARTS[fname]
    try:
        state = _strip_prefix(_torch_load(Path(path)))
        net = (InteractionNet if part == "interaction" else PropagationNet)(ModelConfig.paper())
        _load_into(net, state, Path(path), f"{part} network (ResNet-50 IPNet)")
    except WeightsError as err:
        raise FetchError(f"{fname} is not a usable IPNet checkpoint: {err}") from err


class _Terminated(BaseException):
    """Raised by the temporary SIGTERM / SIGHUP handler, as KeyboardInterrupt is for SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _cleanup_signals() -> list[int]:
    """The signals that end a download with the clean-up that Ctrl-C gets."""
    return [sig for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if sig is not None]


@contextlib.contextmanager
def _signals_unwind():
    """While the block runs, SIGTERM and SIGHUP raise inside it, so that its ``finally``
    clauses remove partial files; afterwards the previous handlers are restored and a
    signal that arrived is delivered again, to them (by default: the process ends).

    Only in the main thread (the only one that may set handlers); a signal that was
    ignored (``nohup``) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated(signum)

    previous = {}
    try:
        for sig in _cleanup_signals():
            old = signal.getsignal(sig)
            if old is signal.SIG_IGN or old is None:  # ignored, or set outside Python: leave it
                continue
            previous[sig] = old
            signal.signal(sig, handler)
        yield
    except _Terminated as stop:
        for sig, old in previous.items():
            signal.signal(sig, old)
        previous.clear()
        os.kill(os.getpid(), stop.signum)  # the previous handler's turn (by default: terminate)
        raise SystemExit(128 + stop.signum) from None  # a Python handler that returned
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------------- main logic
def _fetch(
    dest: Path,
    urls: dict[str, str],
    *,
    progress: bool,
    force: bool,
    verify_load: bool,
    timeout: float,
    log=print,
) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    checksums = read_checksums(dest)
    for fname, url in urls.items():
        target = dest / fname
        part = dest / (fname + ".part")
        recorded = checksums.get(fname, {}).get("sha256")
        if target.is_file() and not force:
            digest = sha256_file(target)
            if recorded is not None and digest == recorded:
                log(f"{fname}: already present, checksum OK ({target})")
                continue
            if recorded is None:
                # placed there by hand or before checksums were kept: keep it if it is usable
                try:
                    if not _looks_like_checkpoint(target):
                        raise FetchError(f"{target} is not a PyTorch checkpoint")
                    if verify_load:
                        verify_paper_file(target, fname)
                except FetchError as err:
                    log(f"{fname}: the existing file is not usable ({err}); downloading again")
                else:
                    checksums[fname] = {"sha256": digest, "size": target.stat().st_size, "source": "existing file",
                                        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                    _write_checksums(dest, checksums)
                    log(f"{fname}: already present; recorded its checksum ({target})")
                    continue
            else:
                log(f"{fname}: the existing file does not match its recorded checksum; downloading again")
        with _signals_unwind():
            try:
                digest, size = _download(url, part, fname, progress, timeout)
                if recorded is not None and digest != recorded:
                    raise ChecksumMismatchError(
                        f"checksum mismatch for {fname} downloaded from {url}: got sha256 {digest}, "
                        f"expected {recorded} (recorded in {dest / CHECKSUM_FILE} on the first download). "
                        "The new file was NOT installed"
                        + (f"; the existing {target} is untouched" if target.exists() else "")
                        + ". If the authors really published a new file, delete that entry of "
                        f"{CHECKSUM_FILE} and run again"
                    )
                if not _looks_like_checkpoint(part):
                    raise FetchError(
                        f"the server did not send a PyTorch checkpoint for {fname} (perhaps an HTML "
                        f"page: the address {url} may have moved); nothing was installed"
                    )
                if verify_load:
                    verify_paper_file(part, fname)
                os.replace(part, target)
            finally:  # any failure or interruption (KeyboardInterrupt, SIGTERM, SIGHUP)
                if part.exists():
                    part.unlink()
        if recorded is None:
            checksums[fname] = {"sha256": digest, "size": size, "url": url,
                                "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            _write_checksums(dest, checksums)
        log(f"{fname}: installed {target} ({size / 2**20:.1f} MiB, sha256 {digest[:16]}...)")
    return dest


def fetch_weights(
    name: str = "ipnet-paper",
    dest: str | os.PathLike | None = None,
    urls: Mapping[str, str] | str | None = None,
    progress: bool = True,
    accept_license: bool = False,
    *,
    force: bool = False,
    verify_load: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download the original IPNet weights; return the folder holding them.

    Parameters
    ----------
    name:
        ``"ipnet-paper"`` (the only downloadable model).
    dest:
        Target folder (default ``weights.cache_dir() / "ipnet-paper"``).
    urls:
        File name -> address mapping, or a base address (default: the published
        addresses, or ``$NAPARI_IPNET_PAPER_URL_BASE``).
    progress:
        Show a progress bar and messages.
    accept_license:
        Must be True: the weights are CC BY-NC-SA 4.0, non-commercial use only.
    force:
        Download again even when a file with the recorded checksum is present.
    verify_load:
        Load each new file and match it against the architecture (needs torch).
    timeout:
        Socket timeout in seconds.

    Raises
    ------
    LicenseNotAcceptedError, ChecksumMismatchError, FetchError
    """
    if name not in MODELS:
        raise ValueError(f"unknown weights {name!r}; downloadable: {', '.join(MODELS)}")
    if not accept_license:
        raise LicenseNotAcceptedError(
            LICENSE_NOTICE + "\nPass accept_license=True to fetch_weights (or --yes on the command "
            "line) to accept these terms and download."
        )
    folder = Path(dest).expanduser() if dest is not None else default_dir(name)
    if progress:
        print(LICENSE_NOTICE, file=sys.stderr)
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    return _fetch(folder, paper_urls(urls), progress=progress, force=force,
                  verify_load=verify_load, timeout=timeout, log=log)


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=MODELS, help="which weights to download")
    parser.add_argument("--dir", type=Path, default=None,
                        help="target folder (default: the per-user cache, <cache>/ipnet-paper)")
    parser.add_argument("--force", action="store_true",
                        help="download again even when the files are present with the recorded checksum")
    parser.add_argument("--yes", "-y", action="store_true",
                        help="accept the CC BY-NC-SA 4.0 non-commercial licence without asking")
    parser.add_argument("--no-verify", dest="verify_load", action="store_false",
                        help="skip loading each downloaded file as a state dict (checksums are still kept)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="network timeout in seconds")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _confirm() -> bool:
    if not (sys.stdin is not None and sys.stdin.isatty()):
        print("Not running interactively: pass --yes to accept the licence.", file=sys.stderr)
        return False
    try:
        answer = input("Accept these terms and download? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser() if args.dir is not None else default_dir(args.name)
    print(LICENSE_NOTICE)
    print(f"Target folder: {folder}")
    if not args.yes and not _confirm():
        print("Licence not accepted: nothing was downloaded.", file=sys.stderr)
        return 1
    try:
        _fetch(folder, paper_urls(), progress=not args.quiet, force=args.force,
               verify_load=args.verify_load, timeout=args.timeout)
    except (FetchError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: partial downloads were removed", file=sys.stderr)
        return 130
    print("Done. Use them with load_model('ipnet-paper'"
          + (f", weights_dir={str(folder)!r}" if args.dir is not None else "") + ").")
    return 0
