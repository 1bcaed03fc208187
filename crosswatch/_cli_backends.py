"""The ``crosswatch backends`` command: which backend would watch a path, and why."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

from . import _cli_options, _config
from ._backend import Capabilities
from ._plugins import Plugins
from ._records import text, write_bytes
from ._select import ProbeReport, probe


def _true_flags(capabilities: Capabilities) -> list[str]:
    """The names of the capabilities a backend has, in declaration order."""
    return [f.name for f in dataclasses.fields(capabilities) if getattr(capabilities, f.name)]


def _report(
    args: argparse.Namespace, plugins: Plugins, config_file: str | None
) -> tuple[ProbeReport, frozenset[str]]:
    """Probe ``args.path`` with the settings ``watch`` would use there."""
    settings = _config.resolve(
        args={"backend": _cli_options.backend(args), "deny": _cli_options.deny(args)},
        config_file=config_file,
    )
    backend = "auto" if settings.backend is None else list(settings.backend)
    report = probe(
        args.path, backend=backend, deny=settings.deny, access=args.access, pids=args.pids,
        plugins=plugins,
    )
    return report, settings.deny


def _backend_rows(
    report: ProbeReport, plugins: Plugins, deny: frozenset[str]
) -> list[dict[str, Any]]:
    rows = []
    for result in report.results:
        cls = plugins.backends[result.backend]
        rows.append(
            {
                "name": result.backend,
                "available": result.available,
                "denied": result.backend in deny,
                "lacks_access": report.access and not cls.capabilities.access_events,
                "lacks_pids": report.pids and not cls.capabilities.pids,
                "reason": text(result.reason),
                "score": result.score,
                "limit": result.limit,
                "needed": result.needed,
                "plugin": plugins.backends.origin(result.backend),
                "description": cls.description,
                "capabilities": _true_flags(cls.capabilities),
                "options": dict(cls.extra_options),
                "chosen": result.backend == report.choice,
            }
        )
    return rows


def human_row(row: dict[str, Any]) -> list[str]:
    status = "available" if row["available"] else "unavailable"
    if row["denied"]:
        status += ", denied"
    if row["lacks_access"]:
        status += ", cannot report access events"
    if row.get("lacks_pids"):
        status += ", cannot report pids"
    mark = "*" if row["chosen"] else " "
    lines = [f"{mark} {row['name']}  {status}, score {row['score']}, plugin {row['plugin']}"]
    if row["reason"]:
        lines.append(f"    {row['reason']}")
    handles = []
    if row["limit"] is not None:
        handles.append(f"handles free: {row['limit']}")
    if row["needed"] is not None:
        handles.append(f"needed here: {row['needed']}")
    if handles:
        lines.append(f"    {', '.join(handles)}")
    lines.append(f"    capabilities: {', '.join(row['capabilities']) or 'none'}")
    for name, meaning in sorted(row.get("options", {}).items()):
        lines.append(f"    option {row['name']}.{name}: {meaning}")
    return lines


def _human_report(report: ProbeReport, rows: list[dict[str, Any]]) -> str:
    lines = [f"backends for {report.path}:"]
    for row in rows:
        lines.extend(human_row(row))
    if not rows:
        lines.append("  (none registered)")
    if report.choice is None:
        lines.append(f"no backend can watch it: {report.reason}")
    else:
        lines.append(f"watch would use: {report.choice} ({report.reason})")
    return "\n".join(lines) + "\n"


def show(args: argparse.Namespace, config_file: str | None) -> bool:
    """Print the report ``crosswatch backends`` prints; True if a backend can watch."""
    plugins = Plugins()
    report, deny = _report(args, plugins, config_file)
    rows = _backend_rows(report, plugins, deny)
    if args.json:
        whole = {
            "path": text(report.path),
            "access": report.access,
            "pids": report.pids,
            "choice": report.choice,
            "reason": text(report.reason),
            "backends": rows,
        }
        write_bytes(json.dumps(whole, ensure_ascii=True, indent=2).encode("ascii") + b"\n")
    else:
        write_bytes(os.fsencode(_human_report(report, rows)))
    return report.choice is not None
