"""`profile --remote` against a real sshd on 127.0.0.1, started by the test with throwaway keys."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.onnx_builders import conv_model, save
from pdd_edge.cli.app import app
from typer.testing import CliRunner

from pdd_edge.errors import PddError
from pdd_edge.profiling.remote import RemoteHost

runner = CliRunner()
LEAN = ["--warmup", "0", "--min-runs", "3", "--min-time", "0", "--threads", "1"]
NO_HOST_CHECK = ["--ssh-option", "StrictHostKeyChecking=no", "--ssh-option", "UserKnownHostsFile=/dev/null",
                 "--ssh-option", "LogLevel=ERROR"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A foreground sshd on a random port that accepts a fresh key for the current user."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists() or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("OpenSSH server/client not installed (apt-get install openssh-server openssh-client)")
    folder = tmp_path_factory.mktemp("sshd")
    host_key = _keygen(folder / "host_key")
    user_key = _keygen(folder / "user_key")
    (folder / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {folder}/authorized_keys\nPidFile {folder}/sshd.pid\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        # The test runs as root on CI and dev machines; keys in a pytest tmp folder are not
        # owned the way StrictModes wants.
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n"  # scp speaks SFTP since OpenSSH 9
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    log = (folder / "sshd.log").open("w")
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    if proc.poll() is not None:
        pytest.fail(f"sshd did not start: {(folder / 'sshd.log').read_text()}")
    yield {"port": port, "key": user_key, "folder": folder, "user": os.environ.get("USER") or _whoami()}
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def model(tmp_path) -> str:
    return save(conv_model(["N", 3, 8, 8], (4, 3, 3, 3)), tmp_path / "board-model.onnx")


def _remote_args(sshd, key: Path | None = None, port: int | None = None, python: str = sys.executable) -> list[str]:
    return ["--remote", f"{sshd['user']}@127.0.0.1:{port or sshd['port']}", "--ssh-key", str(key or sshd["key"]),
            "--remote-python", python, *NO_HOST_CHECK]


def test_profile_remote_round_trip_brings_json_back_and_cleans_up(sshd, model, tmp_path):
    out = tmp_path / "remote.json"

    result = runner.invoke(app, ["profile", model, *_remote_args(sshd), "--batch-size", "1,2", "--json-out", str(out), *LEAN])

    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    remote = record["settings"]["remote"]
    assert remote["host"] == f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    assert remote["cleaned_up"] is True and not Path(remote["folder"]).exists()  # the "board" is this machine
    assert [b["latency"]["runs"] >= 3 for b in record["batches"]] == [True, True]
    assert record["batches"][0]["memory"]["peak_rss_growth_mb"] > 0
    assert record["cost"]["macs"] == 4 * 8 * 8 * 27  # counted here, from the same file
    assert "on " + remote["host"] in result.stdout


def test_profile_remote_wrong_key_is_an_authentication_error(sshd, model, tmp_path):
    stranger = _keygen(tmp_path / "stranger_key")

    result = runner.invoke(app, ["profile", model, *_remote_args(sshd, key=stranger), *LEAN])

    assert result.exit_code == 2
    assert "authentication failed" in result.stderr


def test_profile_remote_closed_port_is_unreachable(sshd, model):
    result = runner.invoke(app, ["profile", model, *_remote_args(sshd, port=_free_port()), *LEAN])

    assert result.exit_code == 2
    assert "cannot reach" in result.stderr and "unreachable" in result.stderr


def test_profile_remote_without_onnxruntime_on_board_says_what_to_install(sshd, model, tmp_path):
    # A Python that ignores site-packages stands in for a board without numpy/onnxruntime.
    bare = tmp_path / "bare-python"
    bare.write_text(f"#!/bin/sh\nexec {sys.base_prefix}/bin/python3 -I -S \"$@\"\n")
    bare.chmod(0o755)

    result = runner.invoke(app, ["profile", model, *_remote_args(sshd, python=str(bare)), *LEAN])

    assert result.exit_code == 2
    assert "is not installed for" in result.stderr and "pip install numpy onnxruntime" in result.stderr


@pytest.mark.parametrize("dest, port, expected", [
    ("pi@raspberrypi", None, ("pi", "raspberrypi", None)),
    ("pi@10.0.0.7:2222", None, ("pi", "10.0.0.7", 2222)),
    ("pi@10.0.0.7:2222", 22, ("pi", "10.0.0.7", 22)),
    ("root@[::1]:2200", None, ("root", "::1", 2200)),
])
def test_remote_host_parse_reads_user_host_and_port(dest, port, expected):
    host = RemoteHost.parse(dest, port=port)

    assert (host.user, host.host, host.port) == expected


@pytest.mark.parametrize("dest", ["raspberrypi", "pi@", "pi@host:port", "pi@host:70000"])
def test_remote_host_parse_rejects_malformed_destination(dest):
    with pytest.raises(PddError):
        RemoteHost.parse(dest)
