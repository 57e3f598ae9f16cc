"""Measuring on a board over SSH with the system `ssh` and `scp`.

The board needs Python 3 with numpy and onnxruntime, nothing of pdd-edge: the self-contained
`runner.py`, the models and a JSON spec are copied to a fresh temporary folder there, the
runner prints its result as JSON on stdout, and the folder is removed afterwards. MACs and
params are counted here, from the same file; only timing and memory need the board.

`BatchMode=yes` makes ssh fail instead of prompting for a password, so a missing key is an
error, not a hang. ssh's own exit code 255 separates "could not connect / log in" from a
failure of the remote command.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pdd_edge.errors import PddError

SSH_FAILED = 255  # ssh's exit code for its own errors (connection, authentication, host key)
RUNNER_ERROR = 3  # runner.ERROR_EXIT: the runner explained the problem on stderr
CONNECT_TIMEOUT_S = 15

# Run by the board's Python before anything is copied: checks the modules and makes the folder.
PREFLIGHT = "import numpy, onnxruntime, tempfile; print(tempfile.mkdtemp(prefix='pdd-edge-'))"

_DEST = re.compile(r"^(?P<user>[^@\s/:]+)@(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<host>[^@\s/:\[\]]+))(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class RemoteHost:
    user: str
    host: str
    port: int | None = None
    identity: Path | None = None
    options: tuple[str, ...] = ()  # extra `-o KEY=VALUE` options for ssh and scp
    python: str = "python3"

    @classmethod
    def parse(cls, dest: str, *, port: int | None = None, identity: Path | None = None,
              options: Sequence[str] = (), python: str = "python3") -> "RemoteHost":
        """`USER@HOST`, `USER@HOST:PORT` or `USER@[IPv6]:PORT`; --ssh-port wins over :PORT."""
        m = _DEST.match(dest.strip())
        if not m:
            raise PddError(f"--remote must look like USER@HOST or USER@HOST:PORT, got {dest!r}")
        port = port if port is not None else (int(m["port"]) if m["port"] else None)
        if port is not None and not 0 < port < 65536:
            raise PddError(f"SSH port must be between 1 and 65535, got {port}")
        if identity is not None and not Path(identity).is_file():
            raise PddError(f"SSH key not found: {identity}")
        for opt in options:
            if "=" not in opt or opt.startswith("-"):
                raise PddError(f"--ssh-option takes KEY=VALUE (an ssh -o option), got {opt!r}")
        return cls(m["user"], m["ipv6"] or m["host"], port, Path(identity) if identity else None, tuple(options), python)

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port else "")

    def _common(self, port_flag: str) -> list[str]:
        args = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        for opt in self.options:
            args += ["-o", opt]
        if self.port:
            args += [port_flag, str(self.port)]
        if self.identity:
            args += ["-i", str(self.identity)]
        return args

    def ssh(self, command: str) -> subprocess.CompletedProcess:
        return _call(["ssh", *self._common("-p"), f"{self.user}@{self.host}", command])

    def scp(self, files: Sequence[Path], remote_dir: str) -> subprocess.CompletedProcess:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return _call(["scp", "-q", *self._common("-P"), *map(str, files), f"{self.user}@{host}:{remote_dir}/"])

    def onnxruntime_version(self) -> str:
        """The board's onnxruntime version (part of a latency table's cache key)."""
        python = shlex.quote(self.python)
        proc = self.ssh(f"{python} -c {shlex.quote('import onnxruntime; print(onnxruntime.__version__)')}")
        self._check(proc, "asking the onnxruntime version of")
        return proc.stdout.strip().splitlines()[-1]

    def measure(self, models, batch_sizes: Sequence[int], settings) -> dict:
        """Copy runner, models and spec to a temporary folder on the board, run, clean up."""
        python = shlex.quote(self.python)
        remote_dir = self._preflight(python)
        cleanup = f"rm -rf -- {shlex.quote(remote_dir)}"
        try:
            result = self._copy_and_run(models, batch_sizes, settings, python, remote_dir)
        except BaseException:
            self.ssh(cleanup)  # best effort: the error that got us here is the one to report
            raise
        cleaned = self.ssh(cleanup).returncode == 0
        result["remote"] = {"host": self.label, "folder": remote_dir, "cleaned_up": cleaned}
        return result

    def _copy_and_run(self, models, batch_sizes, settings, python: str, remote_dir: str) -> dict:
        from pdd_edge.profiling import runner
        from pdd_edge.profiling.measure import runner_spec

        with tempfile.TemporaryDirectory(prefix="pdd-edge-remote-") as tmp:
            staged = Path(tmp)
            names = [f"model{i}.onnx" for i in range(len(models))]  # distinct even if basenames clash
            for name, m in zip(names, models):
                _stage_model(Path(m.path), staged / name)
            spec = runner_spec(models, batch_sizes, settings, names)
            (staged / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
            files = [Path(runner.__file__), staged / "spec.json", *(staged / n for n in names)]
            self._check(self.scp(files, remote_dir), "copying the model to")
        proc = self.ssh(f"cd {shlex.quote(remote_dir)} && {python} runner.py spec.json")
        self._check(proc, "running the profiler on")
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise PddError(f"the profiler on {self.label} printed no JSON result") from None

    def _preflight(self, python: str) -> str:
        proc = self.ssh(f"{python} -c {shlex.quote(PREFLIGHT)}")
        if proc.returncode not in (0, SSH_FAILED):
            missing = re.search(r"No module named '([^']+)'", proc.stderr)
            if missing:
                raise PddError(f"{missing[1]} is not installed for {self.python} on {self.label}: "
                               f"run `{self.python} -m pip install numpy onnxruntime` there")
            if proc.returncode == 127:
                raise PddError(f"{self.python} not found on {self.label}; give its path with --remote-python")
        self._check(proc, "preparing")
        folder = proc.stdout.strip().splitlines()[-1:] or [""]
        if not folder[0].startswith("/"):
            raise PddError(f"could not create a temporary folder on {self.label}")
        return folder[0]

    def _check(self, proc: subprocess.CompletedProcess, doing: str) -> None:
        if proc.returncode == 0:
            return
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        if proc.returncode == SSH_FAILED or "Permission denied" in proc.stderr:
            raise PddError(f"cannot reach {self.label} over SSH ({_ssh_reason(proc.stderr)}): {last}")
        if proc.returncode == RUNNER_ERROR:
            raise PddError(f"on {self.label}: {last}")
        raise PddError(f"{doing} {self.label} failed: {last}")


def _call(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise PddError(f"`{args[0]}` is not installed here; --remote needs the OpenSSH client") from None


def _ssh_reason(stderr: str) -> str:
    text = stderr.lower()
    if "permission denied" in text or "authentication" in text:
        return "authentication failed: is your public key in the board's authorized_keys? use --ssh-key"
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return "host key not trusted: connect once with plain ssh to accept it"
    if "could not resolve" in text or "name or service not known" in text:
        return "unknown host name"
    return "host unreachable or SSH not running"


def _stage_model(path: Path, dest: Path) -> None:
    """The model as one file for the board: a link (scp copies what it points to), or, when its
    weights live in external data files whose names the renamed copy would lose, a copy with them
    inlined (fine below protobuf's 2 GB, far above any edge model)."""
    import onnx

    from pdd_edge.onnx.meta import load_onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer):
        onnx.save(load_onnx(path), str(dest))
    else:
        dest.symlink_to(path.resolve())
