"""The ``crosswatch publish`` and ``crosswatch follow`` commands.

``publish`` sends a tree's changes to a NATS JetStream stream; ``follow`` prints
a published root's changes, on any machine, in the records ``crosswatch watch``
prints. Errors are handled as for every command (see ``_cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._records import write_bytes

if TYPE_CHECKING:
    import ssl

#: Where secrets come from: never the command line, which other users can read.
PASSWORD_ENV = "CROSSWATCH_NATS_PASSWORD"
TOKEN_ENV = "CROSSWATCH_NATS_TOKEN"


def add_commands(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    """Add both commands; ``parent`` holds the backend selection options."""
    from ._cli_options import filter_options, positive_int, record_options
    pub = subparsers.add_parser(
        "publish",
        parents=[parent],
        help="publish the changes under PATH... to a NATS JetStream stream",
        description="Watch PATH... and publish each batch of changes to a NATS JetStream "
        "stream, one subject per root, with a baseline of each root at the start and "
        "every N batches; 'crosswatch follow' reads them back anywhere.",
    )
    pub.add_argument("paths", nargs="+", metavar="PATH", help="directory to watch")
    _server(pub)
    pub.add_argument("--baseline-every", type=positive_int, default=None, metavar="N",
                     help="store a new baseline after every N batches (default: 1000)")
    pub.add_argument("--max-backlog", type=positive_int, default=None, metavar="BYTES",
                     help="bytes of batches kept while the server is unreachable; past "
                     "them, they are dropped and a new epoch begins (default: 64 MiB)")
    filter_options(pub.add_argument_group("what to publish"))
    pub.add_argument("-q", "--quiet", action="store_true",
                     help="do not say on stderr when publishing begins")
    pub.set_defaults(func=cmd_publish)

    fol = subparsers.add_parser(
        "follow",
        help="print the changes of a published root",
        description="Follow root ID of a NATS JetStream stream: print its tree as it was "
        "at its newest baseline (a 'resync' record, then one 'created' per entry), then "
        "every change after, as 'crosswatch watch' prints them.",
    )
    fol.add_argument("url", metavar="URL", help="the server, as nats://HOST:PORT")
    _server(fol, url=False)
    fol.add_argument("--root", required=True, metavar="ID",
                     help="the root's id, as 'crosswatch publish' prints it")
    fol.add_argument("--into", metavar="DIR",
                     help="print paths under DIR (default: the root's path where published)")
    fol.add_argument("--durable", metavar="NAME",
                     help="a consumer the server keeps: started again with NAME, it goes "
                     "on after the last batch printed")
    record_options(fol.add_argument_group("output"))
    fol.set_defaults(func=cmd_follow)


def _server(p: argparse.ArgumentParser, *, url: bool = True) -> None:
    from ._cli_options import positive_seconds

    group = p.add_argument_group("the server")
    if url:
        group.add_argument("--to", required=True, metavar="URL",
                           help="the server, as nats://HOST:PORT (tls:// for TLS)")
    group.add_argument("--stream", default="crosswatch", metavar="NAME",
                       help="the JetStream stream (default: crosswatch)")
    group.add_argument("--user", metavar="NAME",
                       help=f"user name; the password comes from ${PASSWORD_ENV}")
    group.add_argument("--creds", metavar="FILE", help="a NATS credentials file")
    group.add_argument("--tls-ca", metavar="FILE",
                       help="trust the CA in this PEM file for the server's certificate "
                       "(default: the system's)")
    group.add_argument("--tls-cert", metavar="FILE",
                       help="this side's certificate (PEM), for a server that verifies "
                       "its clients")
    group.add_argument("--tls-key", metavar="FILE",
                       help="the key of --tls-cert, unless that file holds it")
    group.add_argument("--tls-hostname", metavar="NAME",
                       help="the name the server's certificate must hold (default: the "
                       "URL's host)")
    group.add_argument("--timeout", type=positive_seconds, default=None, metavar="SECONDS",
                       help="how long to wait for the server (default: 5)")


def connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """The connection's keywords: credentials from the options and the environment."""
    options: dict[str, Any] = {}
    if args.user is not None:
        options["user"] = args.user
        options["password"] = os.environ.get(PASSWORD_ENV, "")
    token = os.environ.get(TOKEN_ENV)
    if token:
        options["token"] = token
    if args.creds is not None:
        options["user_credentials"] = args.creds
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.tls_ca is not None or args.tls_cert is not None or args.tls_key is not None:
        options["tls"] = tls_context(args.tls_ca, args.tls_cert, args.tls_key)
    if args.tls_hostname is not None:
        options["tls_hostname"] = args.tls_hostname
    return options


def tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """A client's TLS context: the server verified against ``ca`` (or the system's
    CAs), and ``cert`` (with ``key``) presented to a server that verifies clients."""
    import ssl

    from ._errors import ConfigError

    if key is not None and cert is None:
        raise ConfigError("--tls-key is the key of a client certificate: give that "
                          "certificate too (--tls-cert FILE)")
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot take {ca} as the CA of the server's certificate "
                          f"({_reason(exc)}): give a PEM file") from None
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot take {cert} as this side's certificate "
                              f"({_reason(exc)}): give it in PEM, and its key with "
                              "--tls-key unless the same file holds it") from None
    return context


def _reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)  # an ssl.SSLError's
    return str(reason or exc.strerror or exc)


def cmd_publish(args: argparse.Namespace) -> int:
    """``crosswatch publish``."""
    from . import _cli, _cli_options
    from ._publish import BASELINE_EVERY, MAX_BACKLOG, Publisher, apublish

    def ready(publisher: Publisher) -> None:
        if not args.quiet:
            ids = ", ".join(f"{path} as root {publisher.ids[path]}"
                            for path in sorted(publisher.ids))
            _cli._stderr(f"publishing to {args.to}, stream {args.stream}: {ids}")

    async def run() -> None:
        await apublish(
            *args.paths,
            to=args.to,
            stream=args.stream,
            options=connection_options(args),
            baseline_every=args.baseline_every or BASELINE_EVERY,
            max_backlog=args.max_backlog or MAX_BACKLOG,
            on_ready=ready,
            backend=_cli_options.backend(args),
            deny=_cli_options.deny(args),
            **_cli._tree_keywords(args),
        )

    return asyncio.run(_until_signalled(run))


def cmd_follow(args: argparse.Namespace) -> int:
    """``crosswatch follow``."""
    from . import _cli
    from ._follow import Follower

    render = _cli._renderer(args)
    end = b"\0" if args.null else b"\n"

    async def run() -> None:
        async with Follower(args.url, args.stream, root=args.root, into=args.into,
                            durable=args.durable, options=connection_options(args)) as f:
            async for batch in f:
                write_bytes(b"".join(render(event) + end for event in batch))

    return asyncio.run(_until_signalled(run))


async def _until_signalled(run: Callable[[], Awaitable[None]]) -> int:
    """Run ``run()`` until it ends (exit 0) or SIGINT or SIGTERM cancels it (130,
    143). The signals are the loop's while it runs, so that none lands in the
    middle of a connection's own task, which would take it down with an error."""
    from . import _cli

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(run())
    codes: list[int] = []

    def stop(code: int) -> None:
        codes.append(code)
        task.cancel()

    added = []
    for name, code in (("SIGINT", _cli.EXIT_INTERRUPTED), ("SIGTERM", _cli.EXIT_TERMINATED)):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            loop.add_signal_handler(signum, stop, code)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # (Windows' loops, or not the main thread: the default stays)
        added.append(signum)
    try:
        await task
    except asyncio.CancelledError:
        if not codes:
            raise
    finally:
        for signum in added:
            loop.remove_signal_handler(signum)
    return codes[0] if codes else _cli.EXIT_OK
