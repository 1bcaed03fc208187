"""Publishing and following over TLS: a server's certificate checked against a CA
given, a server that verifies its clients' certificates, and what is said when a
handshake fails or a file given cannot be used."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from remote_kit import publishing

from crosswatch import ConfigError, RemoteTLSError
from crosswatch._cli_remote import tls_context
from crosswatch._publish import apublish
from crosswatch.testing import NatsServer

trustme = pytest.importorskip("trustme")



@dataclass(frozen=True)
class Certs:
    """A CA, the server's certificate (for 127.0.0.1) and key, a client's certificate
    (key in the same file), and a client certificate of a CA nobody trusts."""

    ca: str
    server: tuple[str, str]
    client: str
    stranger: str


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    where = tmp_path_factory.mktemp("certs")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(where / "ca.pem")
    server.cert_chain_pems[0].write_to_path(where / "server.pem")
    server.private_key_pem.write_to_path(where / "server.key")
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(
        where / "client.pem")
    other.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(
        where / "stranger.pem")
    return Certs(str(where / "ca.pem"), (str(where / "server.pem"), str(where / "server.key")),
                 str(where / "client.pem"), str(where / "stranger.pem"))


@pytest.fixture(scope="module")
def tls_server(certs: Certs) -> Iterator[NatsServer]:
    with NatsServer(tls=certs.server) as server:
        yield server


@pytest.fixture(scope="module")
def verifying_server(certs: Certs) -> Iterator[NatsServer]:
    with NatsServer(tls=certs.server, client_ca=certs.ca) as server:
        yield server


def _publish_once(url: str, root: str, options: dict[str, object]) -> None:
    """Start publishing ``root`` and stop as soon as it is ready."""
    async def go() -> None:
        stop = asyncio.Event()
        await apublish(root, to=url, stream="tls", options={"timeout": 5, **options},
                       stop_event=stop, on_ready=lambda _: stop.set())

    asyncio.run(asyncio.wait_for(go(), 60))


def _context(certs: Certs, client: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certs.ca)
    if client is not None:
        context.load_cert_chain(client)
    return context


def _descriptors() -> int | None:
    """How many descriptors this process holds, where the OS tells (Linux)."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crosswatch", *argv], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_a_tree_is_published_and_followed_over_tls(
    tls_server: NatsServer, certs: Certs, fast_root: str
) -> None:
    with publishing(fast_root, tls_server.url, "over-tls", "--tls-ca", certs.ca) as pub:
        follow = subprocess.Popen(
            [sys.executable, "-m", "crosswatch", "follow", tls_server.url, "--stream",
             "over-tls", "--root", pub.id, "--tls-ca", certs.ca],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True)
        try:
            assert follow.stdout is not None
            assert "resync" in follow.stdout.readline()  # the baseline: where it begins
            time.sleep(0.5)
            Path(fast_root, "sent-over-tls").write_text("x")
            line = follow.stdout.readline()
        finally:
            follow.terminate()
            _, err = follow.communicate(timeout=30)
    assert "created" in line, err
    assert "sent-over-tls" in line


def test_a_server_certificate_this_side_does_not_trust_is_told(
    tls_server: NatsServer, certs: Certs, tmp_path: Path
) -> None:
    gc.disable()  # what is left open must be found now, not closed by a collection later
    try:
        descriptors = _descriptors()
        with pytest.raises(RemoteTLSError, match=r"does not accept .*--tls-ca FILE"):
            _publish_once(tls_server.url, str(tmp_path), {})
        with pytest.raises(RemoteTLSError, match=r"Hostname mismatch.*--tls-hostname"):
            _publish_once(tls_server.url, str(tmp_path),
                          {"tls": _context(certs), "tls_hostname": "elsewhere.example"})
        # A failed handshake leaves no connection behind (nats-py's own close of it
        # never returns).
        assert _descriptors() == descriptors
    finally:
        gc.enable()
    _publish_once(tls_server.url, str(tmp_path), {"tls": _context(certs)})

    done = _cli("publish", str(tmp_path), "--to", tls_server.url, "--timeout", "5")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "does not accept" in lines[0]


def test_a_server_that_verifies_clients_takes_only_a_certificate_it_trusts(
    verifying_server: NatsServer, certs: Certs, fast_root: str
) -> None:
    url = verifying_server.url
    with pytest.raises(RemoteTLSError, match="verifies its clients' certificates") as none:
        _publish_once(url, fast_root, {"tls": _context(certs)})
    with pytest.raises(RemoteTLSError, match="verifies its clients' certificates") as other:
        _publish_once(url, fast_root, {"tls": _context(certs, certs.stranger)})
    # (Which of the two the client sees depends on when the server's alert comes.)
    dropped = "showed none it trusts"
    assert re.search(f"took none|{dropped}", str(none.value))
    assert re.search(f"did not accept this side's|{dropped}", str(other.value))
    with publishing(fast_root, url, "verified", "--tls-ca", certs.ca,
                    "--tls-cert", certs.client) as pub:
        assert pub.id


@pytest.mark.parametrize(("args", "says"), [
    (["--tls-ca", "missing.pem"], "cannot take missing.pem as the CA"),
    (["--tls-ca", "garbage.pem"], "cannot take garbage.pem as the CA"),
    (["--tls-cert", "missing.pem"], "cannot take missing.pem as this side's certificate"),
    (["--tls-cert", "garbage.pem"], "cannot take garbage.pem as this side's certificate"),
    (["--tls-key", "key.pem"], "give that certificate too"),
])
def test_tls_files_that_cannot_be_used_are_named_before_connecting(
    tmp_path: Path, args: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    # Port 1: nothing listens, so an error about the files must come first.
    done = _cli("publish", str(root), "--to", "nats://127.0.0.1:1", *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with pytest.raises(ConfigError, match=says):  # the same, for the command's helper
        tls_context(*_positional(args))


def _positional(args: list[str]) -> tuple[str | None, str | None, str | None]:
    """(ca, cert, key) as the options give them."""
    given = dict(zip(args[::2], args[1::2], strict=True))
    return given.get("--tls-ca"), given.get("--tls-cert"), given.get("--tls-key")
