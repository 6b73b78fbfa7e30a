"""A local tritonserver from the ``nvidia-pytriton`` wheel, started and stopped by PID.

The wheel carries a real ``tritonserver`` (2.51) with the Python backend but no onnxruntime
backend, so a local server serves the repository's Python-backend twin (``<name>_twin``).
The server's venv (``make triton`` builds ``.venv-triton``) needs numpy < 2 (with numpy 2 the
backend's output tensors come back wrong) and ``edgernn`` itself (the twin imports it).

    >>> with LocalTriton("models", venv=".venv-triton", models=["char_twin"]) as server:  # doctest: +SKIP
    ...     client = tritonclient.http.InferenceServerClient(server.http_url)

Ports are picked free on 127.0.0.1 (the server listens there only); ``stop()`` sends SIGTERM
to the server's PID, waits, then SIGKILLs its process group (the server and its backend stubs).
It also runs at interpreter exit, and the server is told to die with the process that started it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from edgernn.export.errors import ExportError

PR_SET_PDEATHSIG = 1
_CUDA_NOISE = "CudaDriverHelper has not been initialized"


class TritonServerError(ExportError):
    """The local server could not be found, started or made ready (the message says which, and its log)."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 at the time of asking."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _venv_facts(venv: Path) -> tuple[Path, Path, str]:
    """(site-packages/pytriton folder, libpython folder, 'X.Y') of ``venv``'s Python."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise TritonServerError(f"{venv}: no bin/python; build the server venv with `make triton`")
    code = (
        "import importlib.util, sys, sysconfig; s = importlib.util.find_spec('pytriton');"
        "print(s.submodule_search_locations[0] if s else '');"
        "print(sysconfig.get_config_var('LIBDIR')); print('%d.%d' % sys.version_info[:2])"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    if not out[0]:
        raise TritonServerError(f"{venv}: nvidia-pytriton is not installed there (`make triton` installs it)")
    return Path(out[0]), Path(out[1]), out[2]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalTriton:
    """One ``tritonserver`` process serving ``models`` of ``repository`` on 127.0.0.1."""

    def __init__(
        self,
        repository: str | os.PathLike[str],
        venv: str | os.PathLike[str] = ".venv-triton",
        models: Sequence[str] = (),
        log: str | os.PathLike[str] | None = None,
        ready_timeout: float = 90.0,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.venv = Path(venv).resolve()
        self.models = list(models)
        self.ready_timeout = ready_timeout
        self._tmp = Path(tempfile.mkdtemp(prefix="edgernn-triton-"))
        self.log_path = Path(log) if log is not None else self._tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_port = self.grpc_port = self.metrics_port = 0

    # -- addresses ----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    # -- life ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalTriton:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalTriton:
        """Start the server and wait until it and every model are ready; TritonServerError otherwise."""
        pkg, libdir, version = _venv_facts(self.venv)
        server = pkg / "tritonserver"
        backends = self._tmp / "backends"
        (backends / "python").mkdir(parents=True, exist_ok=True)
        links = {
            "libtriton_python.so": server / "backends" / "python" / "libtriton_python.so",
            "triton_python_backend_utils.py": server / "backends" / "python" / "triton_python_backend_utils.py",
            "triton_python_backend_stub": server / "python_backend_stubs" / version / "triton_python_backend_stub",
        }
        for name, target in links.items():
            if not target.exists():
                raise TritonServerError(f"{target}: missing from the nvidia-pytriton wheel (Python {version})")
            link = backends / "python" / name
            if not link.exists():
                link.symlink_to(target)
        env = dict(os.environ)
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '')}"  # the stub runs the first python on PATH
        libs = [str(libdir), str(pkg.parent / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = ":".join(libs + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
        for attempt in range(3):  # a picked port may be taken before the server binds it: pick again
            self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
            cmd = [
                str(server / "bin" / "tritonserver"),
                f"--model-repository={self.repository}",
                f"--backend-directory={backends}",
                "--model-control-mode=explicit",
                *[f"--load-model={m}" for m in self.models],
                "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
                "--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0",
                "--exit-on-error=true", "--log-verbose=0",
            ]
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True, preexec_fn=_die_with_parent,
                )
            atexit.register(self.stop)
            try:
                self._wait_ready()
                return self
            except TritonServerError:
                text = self.log()
                self.stop()
                if "address already in use" not in text.lower() or attempt == 2:
                    raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        paths = ["/v2/health/ready"] + [f"/v2/models/{m}/ready" for m in self.models]
        while time.monotonic() < deadline:
            if self.proc is None:
                raise TritonServerError("tritonserver was not started: call start() first")
            if self.proc.poll() is not None:
                raise TritonServerError(f"tritonserver exited with {self.proc.returncode}:\n{self.log_tail()}")
            if all(self._get(p) == 200 for p in paths):
                return
            time.sleep(0.1)
        raise TritonServerError(f"tritonserver not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}")

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=2) as r:
                return int(r.status)
        except (urllib.error.URLError, OSError):
            return 0

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @staticmethod
    def group_alive(pgid: int, wait: float = 5.0) -> bool:
        """Whether any process of group ``pgid`` (a server and its backend stubs) is still there after ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            if time.monotonic() > deadline:
                return True
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the server's PID, wait up to ``timeout`` s, then SIGKILL its process group."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # backend stubs left behind by a server that died
        atexit.unregister(self.stop)

    def cleanup(self) -> None:
        """Stop and remove the scratch folder (backend links, default log)."""
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- logs ---------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        kept = [ln for ln in self.log().splitlines() if _CUDA_NOISE not in ln]
        return "\n".join(kept[-lines:])
