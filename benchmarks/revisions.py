"""Which crosswatch a child process imports: this checkout, or a revision exported from git.

A benchmark child gets the checkout's directories first on its ``PYTHONPATH``: the
core (``crosswatch/``) and the inotify plugin (``backends/crosswatch-inotify``), so
that the plugin's entry point, which names the module ``crosswatch_inotify``,
imports that copy and not the installed one. A baseline revision is exported with
``git archive`` into a temporary directory laid out the same way.
"""

from __future__ import annotations

import compileall
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: What a child imports from a checkout, relative to its top directory.
PLUGIN_DIR = "backends/crosswatch-inotify"
PACKAGES = ("crosswatch", f"{PLUGIN_DIR}/crosswatch_inotify")


class RevisionError(Exception):
    """A baseline revision that cannot be exported; the message says why."""


@dataclass(frozen=True)
class Checkout:
    """A crosswatch to measure: the column it fills and the directory it is imported from."""

    tool: str
    top: Path
    commit: str | None

    @property
    def paths(self) -> tuple[str, ...]:
        """What goes first on a child's ``PYTHONPATH``, in this order."""
        return (str(self.top), str(self.top / PLUGIN_DIR))

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a child that must import this crosswatch."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (*self.paths, env.get("PYTHONPATH")) if p
        )
        return env

    def check(self, *files: str | None) -> None:
        """Raise unless every one of ``files`` (imported by a child) lies in this checkout."""
        for file in files:
            if file is None or not Path(file).resolve().is_relative_to(self.top.resolve()):
                raise RevisionError(
                    f"{self.tool} should be imported from {self.top}, but a child imported "
                    f"{file}; is something putting another crosswatch first on sys.path?"
                )

    def compile(self) -> None:
        """Bytecode ahead of the runs.

        An installed package comes with its bytecode (pip compiles it); a checkout run
        with PYTHONDONTWRITEBYTECODE set would compile its modules again in every
        child, inside the startup measurement when the backend plugin is imported.
        """
        for package in PACKAGES:
            if (self.top / package).is_dir():
                compileall.compile_dir(str(self.top / package), quiet=1)


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, timeout=60,
                          check=False)


def commit_of(rev: str) -> str:
    """The short hash ``rev`` names in this repository."""
    done = git("rev-parse", "--short", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    if done.returncode != 0:
        raise RevisionError(f"{rev!r} is not a commit of this repository "
                            f"({done.stderr.decode(errors='replace').strip()}); "
                            "give a hash, a branch or something like main~5")
    return done.stdout.decode().strip()


def current() -> Checkout:
    """This checkout, as it is on disk (uncommitted changes included)."""
    head = git("rev-parse", "--short", "HEAD")
    return Checkout("crosswatch", REPO, head.stdout.decode().strip() or None)


def export(rev: str, into: Path) -> Checkout:
    """Revision ``rev``'s core and inotify plugin, written below ``into``."""
    commit = commit_of(rev)
    for package in PACKAGES:
        if git("cat-file", "-e", f"{commit}:{package}").returncode != 0:
            raise RevisionError(f"revision {rev} ({commit}) has no {package}/; "
                                "pick a revision that has the core and the inotify plugin")
    archive = git("archive", "--format=tar", commit, *PACKAGES)
    if archive.returncode != 0:
        raise RevisionError(f"git archive {commit} failed: "
                            f"{archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout), mode="r:") as tar:
        tar.extractall(into, filter="data")
    return Checkout(f"crosswatch@{rev}", into, commit)


@contextmanager
def baseline(rev: str | None) -> Iterator[Checkout | None]:
    """``rev`` exported to a temporary directory for the duration; None without one."""
    if rev is None:
        yield None
        return
    top = Path(tempfile.mkdtemp(prefix="crosswatch-baseline-"))
    try:
        yield export(rev, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)
