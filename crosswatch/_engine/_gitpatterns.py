"""One ``.gitignore`` file's patterns, and git's rule for which of them speak for an entry.

git weighs, for each entry, only the patterns that match the entry itself: a
pattern that matches one of its directories speaks for that directory, and the
entry is then left out with it or not at all. pathspec (which parses and compiles
each pattern here) also counts a match of a directory for what is below it, and
ranks matches of directories below matches of files, which for directories
themselves and for ``!`` patterns gives other answers than git's. So each pattern
is compiled alone, and asked only whether it matches the entry itself:

- a pattern without ``/`` (but a trailing one) is matched against the entry's name;
- a pattern with one is matched against the entry's path from the file's directory,
  and it speaks for the entry only if it does not match the entry's parent (then it
  matched that directory, or one above it);
- ``dir/**`` matches what is below ``dir``, at any depth, not ``dir`` itself.

The last pattern that speaks for an entry decides; the entries the engine asks
about are never below a directory left out (it is never read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: What a directory's path ends with in a question to pathspec.
_DIR = "/"


def _compiled(line: str) -> Any:
    import pathspec  # loaded only by watchers that read .gitignore files

    return pathspec.GitIgnoreSpec.from_lines([line])


def _hit(spec: Any, path: str) -> bool:
    return spec.check_file(path).include is not None


@dataclass(frozen=True, slots=True)
class Pattern:
    """One pattern line: ``leaves_out`` is False for a ``!`` pattern."""

    leaves_out: bool
    spec: Any
    by_name: bool
    """Matched against the name only (no ``/`` but a trailing one)."""
    parent_of_inside: Any = None
    """For ``dir/**``: the pattern ``dir``, which the entry must not be."""

    def speaks_for(self, prefix: str, name: str, is_dir: bool) -> bool:
        """Does it match the entry ``name`` in the directory at ``prefix`` (its path
        from the file's directory, ending in ``/`` unless empty) itself?"""
        tail = _DIR if is_dir else ""
        if self.by_name:
            return _hit(self.spec, name + tail)
        path = prefix + name + tail
        if not _hit(self.spec, path):
            return False
        if self.parent_of_inside is not None:
            return not (_hit(self.parent_of_inside, path) and not (
                prefix and _hit(self.parent_of_inside, prefix)))
        return not (prefix and _hit(self.spec, prefix))


def compile_lines(
    lines: Iterable[str], where: str, warn: Callable[[str], None]
) -> tuple[Pattern, ...]:
    """The patterns of one file; a line git would not read is skipped with a warning."""
    out: list[Pattern] = []
    for number, line in enumerate(lines, 1):
        try:
            spec = _compiled(line)
        except ValueError:
            warn(f"{where}, line {number}: {line.strip()!r} is not a valid gitignore "
                 "pattern and is skipped; fix or remove that line")
            continue
        if not spec.patterns or spec.patterns[0].include is None:
            continue  # a blank line or a comment
        out.append(_pattern(line, spec))
    return tuple(out)


def _pattern(line: str, spec: Any) -> Pattern:
    leaves_out = bool(spec.patterns[0].include)
    core = line.strip().removeprefix("!").removeprefix("\\").rstrip("/")
    if core.endswith("/**"):
        return Pattern(leaves_out, spec, False, _compiled("/" + core[:-3].lstrip("/")))
    return Pattern(leaves_out, spec, "/" not in core)


def verdict(checks: Sequence[tuple[Sequence[Pattern], str]], name: str, is_dir: bool) -> bool:
    """Is ``name`` left out by the files in ``checks`` (outermost first, each with the
    path of the entry's directory from its own)?"""
    out = False
    for patterns, prefix in checks:
        for pattern in patterns:
            if pattern.speaks_for(prefix, name, is_dir):
                out = pattern.leaves_out
    return out
