"""``napari-ipnet fetch-weights`` against a local HTTP server (no internet)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from napari_ipnet import fetch
from napari_ipnet.fetch import ChecksumMismatchError, FetchError, LicenseNotAcceptedError, fetch_weights

NAMES = ("I_e290.pth", "P_e290.pth")


def _pth_bytes(seed: int, n: int = 5000) -> bytes:
    buf = io.BytesIO()
    g = torch.Generator().manual_seed(seed)
    torch.save({"module.w": torch.randn(n, generator=g)}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        srv.requests.append(name)
        body = srv.files.get(name)
        mode = srv.modes.get(name, "ok")
        if body is None or mode == "404":
            self.send_error(404, "Not Found")
            return
        if mode == "stall":
            time.sleep(2.0)
        if mode == "slow":  # a trickle: a download that lasts until it is stopped
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(0, len(body), 1024):
                    self.wfile.write(body[i : i + 1024])
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:  # the client went away
                pass
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncate":  # the connection drops mid-body
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files = {"I_e290.pth": _pth_bytes(1), "P_e290.pth": _pth_bytes(2, 300_000)}
    srv.modes = {}
    srv.requests = []
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}/files"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _fetch(server, dest, **kw):
    kw.setdefault("verify_load", False)  # the fake files are not IPNet state dicts
    kw.setdefault("progress", False)
    kw.setdefault("accept_license", True)
    kw.setdefault("urls", server.base)
    return fetch_weights("ipnet-paper", dest=dest, **kw)


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.glob("*.part"))


def test_download_installs_files_and_records_checksums(server, tmp_path):
    dest = tmp_path / "w"
    assert _fetch(server, dest) == dest
    for name in NAMES:
        assert (dest / name).read_bytes() == server.files[name]
    record = json.loads((dest / "checksums.json").read_text())
    for name in NAMES:
        assert record[name]["sha256"] == hashlib.sha256(server.files[name]).hexdigest()
        assert record[name]["size"] == len(server.files[name])
    assert _leftovers(dest) == [] and server.requests == list(NAMES)
    # present with the recorded checksum: skipped
    _fetch(server, dest)
    assert server.requests == list(NAMES)
    # --force downloads again and checks against the record
    _fetch(server, dest, force=True)
    assert server.requests == list(NAMES) * 2


def test_refused_without_licence_acceptance(server, tmp_path):
    with pytest.raises(LicenseNotAcceptedError) as err:
        fetch_weights("ipnet-paper", dest=tmp_path / "w", urls=server.base, progress=False)
    msg = str(err.value)
    assert "CC BY-NC-SA 4.0" in msg and "NON-COMMERCIAL" in msg.upper() and "accept_license=True" in msg
    assert server.requests == [] and not (tmp_path / "w").exists()
    with pytest.raises(ValueError, match="unknown weights"):
        fetch_weights("default", dest=tmp_path, accept_license=True)


def test_interrupted_download_leaves_nothing(server, tmp_path):
    dest = tmp_path / "w"
    server.modes["P_e290.pth"] = "truncate"
    with pytest.raises(FetchError) as err:
        _fetch(server, dest)
    msg = str(err.value)
    assert "incomplete" in msg and "P_e290.pth" in msg and f"of {len(server.files['P_e290.pth'])} bytes" in msg
    assert not (dest / "P_e290.pth").exists() and _leftovers(dest) == []
    assert "P_e290.pth" not in json.loads((dest / "checksums.json").read_text())
    # a later run completes the missing file only
    server.modes.clear()
    _fetch(server, dest)
    assert (dest / "P_e290.pth").read_bytes() == server.files["P_e290.pth"]
    assert server.requests == ["I_e290.pth", "P_e290.pth", "P_e290.pth"]


def test_keyboard_interrupt_removes_the_part_file(server, tmp_path, monkeypatch):
    dest = tmp_path / "w"
    monkeypatch.setattr(fetch, "_CHUNK", 4096)
    real_bar = fetch._progress_bar
    seen = []

    def interrupting_bar(total, desc, enabled):
        bar = real_bar(total, desc, False)

        def update(n):
            seen.append(n)
            if len(seen) == 3:
                assert (dest / (desc + ".part")).stat().st_size > 0  # really mid-download
                raise KeyboardInterrupt

        bar.update = update
        return bar

    monkeypatch.setattr(fetch, "_progress_bar", interrupting_bar)
    with pytest.raises(KeyboardInterrupt):
        _fetch(server, dest)
    assert len(seen) == 3 and list(dest.iterdir()) == []


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_termination_signal_removes_the_part_file(server, tmp_path, signame):
    """SIGTERM (kill, a closing session manager) and SIGHUP (a closed terminal) clean up like Ctrl-C."""
    dest = tmp_path / "w"
    server.files["I_e290.pth"] = _pth_bytes(1, 100_000)  # 400 kB: 20 s at the trickle's pace
    server.modes["I_e290.pth"] = "slow"
    code = (
        "from napari_ipnet import fetch\n"
        "fetch._CHUNK = 1024\n"
        f"fetch.fetch_weights('ipnet-paper', dest={str(dest)!r}, urls={server.base!r}, progress=False,\n"
        "                    accept_license=True, verify_load=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    part = dest / "I_e290.pth.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 0):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.02)
    sig = getattr(signal, signame)
    proc.send_signal(sig)
    assert proc.wait(30) == -sig, proc.stderr.read().decode()  # it still dies of the signal
    assert _leftovers(dest) == [] and not (dest / "I_e290.pth").exists()


def test_signal_handlers_are_only_replaced_while_downloading(server, tmp_path, monkeypatch):
    handlers = {sig: signal.getsignal(sig) for sig in fetch._cleanup_signals()}
    during = []
    real_download = fetch._download

    def spying_download(*args, **kwargs):
        during.append({sig: signal.getsignal(sig) for sig in handlers})
        return real_download(*args, **kwargs)

    monkeypatch.setattr(fetch, "_download", spying_download)
    _fetch(server, tmp_path / "w")
    assert len(during) == 2
    for sig, old in handlers.items():
        assert during[0][sig] is not old and signal.getsignal(sig) is old
    # an ignored signal stays ignored (nohup)
    if hasattr(signal, "SIGHUP"):
        monkeypatch.setattr(fetch, "_download", spying_download)
        old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            _fetch(server, tmp_path / "w2")
            assert during[-1][signal.SIGHUP] is signal.SIG_IGN
        finally:
            signal.signal(signal.SIGHUP, old)


def test_checksum_mismatch_keeps_the_good_file(server, tmp_path):
    dest = tmp_path / "w"
    _fetch(server, dest)
    good = server.files["P_e290.pth"]
    server.files["P_e290.pth"] = _pth_bytes(3, 300_000)  # the server now sends other bytes
    with pytest.raises(ChecksumMismatchError) as err:
        _fetch(server, dest, force=True)
    msg = str(err.value)
    assert "checksum mismatch for P_e290.pth" in msg and "NOT installed" in msg and "untouched" in msg
    assert hashlib.sha256(good).hexdigest() in msg
    assert (dest / "P_e290.pth").read_bytes() == good and _leftovers(dest) == []
    record = json.loads((dest / "checksums.json").read_text())
    assert record["P_e290.pth"]["sha256"] == hashlib.sha256(good).hexdigest()


def test_corrupted_local_file_is_downloaded_again(server, tmp_path):
    dest = tmp_path / "w"
    _fetch(server, dest)
    data = bytearray((dest / "I_e290.pth").read_bytes())
    data[-10] ^= 0xFF
    (dest / "I_e290.pth").write_bytes(bytes(data))
    _fetch(server, dest)  # repaired: the server still sends the recorded file
    assert (dest / "I_e290.pth").read_bytes() == server.files["I_e290.pth"]
    assert server.requests == ["I_e290.pth", "P_e290.pth", "I_e290.pth"]
    # a corrupted file and a server sending other bytes: error, nothing installed
    (dest / "I_e290.pth").write_bytes(bytes(data))
    server.files["I_e290.pth"] = _pth_bytes(4)
    with pytest.raises(ChecksumMismatchError):
        _fetch(server, dest)
    assert (dest / "I_e290.pth").read_bytes() == bytes(data) and _leftovers(dest) == []


def test_http_errors_html_and_timeout(server, tmp_path):
    dest = tmp_path / "w"
    server.modes["I_e290.pth"] = "404"
    with pytest.raises(FetchError, match="HTTP 404"):
        _fetch(server, dest)
    server.modes["I_e290.pth"] = "ok"
    server.files["I_e290.pth"] = b"<!DOCTYPE html><html>moved</html>"
    with pytest.raises(FetchError, match="did not send a PyTorch checkpoint"):
        _fetch(server, dest)
    server.files["I_e290.pth"] = _pth_bytes(1)
    server.modes["I_e290.pth"] = "stall"
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        _fetch(server, dest, timeout=0.3)
    assert time.monotonic() - t0 < 1.8
    assert sorted(p.name for p in dest.iterdir()) == []
    with pytest.raises(FetchError, match="cannot reach"):
        _fetch(server, dest, urls="http://127.0.0.1:9/nothing")


def test_load_check_rejects_files_that_are_not_ipnet_checkpoints(server, tmp_path):
    dest = tmp_path / "w"
    server.files["I_e290.pth"] = b"\x80\x02garbage that is no pickle"
    with pytest.raises(FetchError) as err:
        _fetch(server, dest, verify_load=True)
    assert "I_e290.pth is not a usable IPNet checkpoint" in str(err.value)
    server.files["I_e290.pth"] = _pth_bytes(1)  # a state dict, of the wrong network
    with pytest.raises(FetchError) as err:
        _fetch(server, dest, verify_load=True)
    assert "missing key(s)" in str(err.value) and "unexpected key(s)" in str(err.value)
    assert sorted(p.name for p in dest.iterdir()) == []  # nothing installed, nothing recorded


def test_existing_good_file_is_verified_and_recorded(paper_checkpoints, tmp_path):
    folder, _ = paper_checkpoints
    dest = tmp_path / "w"
    dest.mkdir()
    os.symlink(folder / "I_e290.pth", dest / "I_e290.pth")
    # no server: I_e290.pth is already there and loads as the interaction network, so it
    # is kept and its checksum recorded; P_e290.pth cannot be downloaded
    with pytest.raises(FetchError, match="cannot reach .*P_e290.pth"):
        fetch_weights("ipnet-paper", dest=dest, urls="http://127.0.0.1:9/x", progress=False,
                      accept_license=True, verify_load=True)
    record = json.loads((dest / "checksums.json").read_text())
    assert list(record) == ["I_e290.pth"]
    assert record["I_e290.pth"]["sha256"] == hashlib.sha256((folder / "I_e290.pth").read_bytes()).hexdigest()
    assert (dest / "I_e290.pth").is_symlink() and _leftovers(dest) == []


def test_default_folder_is_the_one_load_model_reads(server, tmp_path, monkeypatch):
    from napari_ipnet import weights

    monkeypatch.setenv("NAPARI_IPNET_CACHE", str(tmp_path / "cache"))
    assert fetch.default_dir() == weights.cache_dir() / "ipnet-paper" == tmp_path / "cache" / "ipnet-paper"
    fetch_weights("ipnet-paper", urls=server.base, progress=False, accept_license=True, verify_load=False)
    assert sorted(p.name for p in (tmp_path / "cache" / "ipnet-paper").iterdir()) == [
        "I_e290.pth", "P_e290.pth", "checksums.json"]


def test_urls(monkeypatch):
    monkeypatch.delenv(fetch.URL_BASE_ENV, raising=False)
    urls = fetch.paper_urls()
    assert urls["I_e290.pth"] == "https://www.dropbox.com/s/khx9hmtnqbzg634/I_e290.pth?dl=1"
    assert urls["P_e290.pth"] == "https://www.dropbox.com/s/89heglbglig0g04/P_e290.pth?dl=1"
    monkeypatch.setenv(fetch.URL_BASE_ENV, "http://mirror.example/x/")
    assert fetch.paper_urls()["P_e290.pth"] == "http://mirror.example/x/P_e290.pth"
    assert fetch.paper_urls({"I_e290.pth": "a", "P_e290.pth": "b"}) == {"I_e290.pth": "a", "P_e290.pth": "b"}
    with pytest.raises(ValueError, match="missing"):
        fetch.paper_urls({"I_e290.pth": "a"})


def test_corrupt_checksum_record_is_a_clear_error(server, tmp_path):
    dest = tmp_path / "w"
    dest.mkdir()
    (dest / "checksums.json").write_text("{not json")
    with pytest.raises(FetchError, match="cannot read the recorded checksums"):
        _fetch(server, dest)
    assert server.requests == []


# ------------------------------------------------------------------ command line
def _args(*argv):
    parser = argparse.ArgumentParser()
    fetch.add_arguments(parser)
    return parser.parse_args(list(argv))


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_cli_with_yes(server, tmp_path, monkeypatch, capsys):
    from napari_ipnet import cli

    monkeypatch.setenv(fetch.URL_BASE_ENV, server.base)
    rc = cli.main(["fetch-weights", "ipnet-paper", "--dir", str(tmp_path / "w"), "--yes", "--no-verify", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "CC BY-NC-SA 4.0" in out and "NON-COMMERCIAL" in out
    assert out.index("NON-COMMERCIAL") < out.index("Done")
    assert (tmp_path / "w" / "P_e290.pth").read_bytes() == server.files["P_e290.pth"]


def test_cli_asks_and_refuses(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fetch.URL_BASE_ENV, server.base)
    # not interactive and no --yes: refused, nothing downloaded
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert fetch.run(_args("ipnet-paper", "--dir", str(tmp_path / "w"), "--no-verify")) == 1
    assert "--yes" in capsys.readouterr().err and server.requests == []
    # interactive "n": refused
    monkeypatch.setattr(sys, "stdin", _TTY())
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    assert fetch.run(_args("ipnet-paper", "--dir", str(tmp_path / "w"), "--no-verify")) == 1
    assert server.requests == []
    # interactive "y": downloaded
    monkeypatch.setattr("builtins.input", lambda prompt="": "y")
    assert fetch.run(_args("ipnet-paper", "--dir", str(tmp_path / "w"), "--no-verify", "--quiet")) == 0
    assert server.requests == list(NAMES)


def test_cli_reports_errors_without_traceback(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fetch.URL_BASE_ENV, server.base)
    server.modes["I_e290.pth"] = "truncate"
    assert fetch.run(_args("ipnet-paper", "--dir", str(tmp_path / "w"), "-y", "--no-verify", "--quiet")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: download of I_e290.pth is incomplete")


def test_module_does_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "from napari_ipnet import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        cli.main(['fetch-weights', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert '--yes' in out.getvalue() and '--dir' in out.getvalue(), out.getvalue()\n"
        "assert 'napari_ipnet.fetch' in sys.modules\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
