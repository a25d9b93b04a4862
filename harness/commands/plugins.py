"""How the ``list`` commands of environments, policies and routers show a registry: one row per entry, with
its details when it works and its error when it is a broken plugin or a refused name clash, and where it
comes from (the entry point and its distribution), as a table or as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from foundation.registry import Entry


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def show_entries(console: Console, entries: Sequence[Entry], details: Callable[[Any], Mapping[str, Any]],
                 columns: Sequence[str], as_json: bool) -> None:
    """Print ``entries``; ``details(value)`` gives a working entry's fields, keyed by ``columns`` (the last
    column, a description, shows a broken entry's error)."""
    records = [{"name": e.name, **(details(e.value) if e.ok else dict.fromkeys(columns)), "source": e.source,
                "origin": e.origin, "error": e.error} for e in entries]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    table = Table(Column("name", no_wrap=True), *columns, "entry point")
    for record in records:
        cells = ([_text(record[c]) for c in columns] if not record["error"]
                 else [""] * (len(columns) - 1) + [f"[bold red]broken:[/] {escape(record['error'])}"])
        table.add_row(record["name"], *cells, f"{record['source']}\n({record['origin']})")
    console.print(table)
    broken = sum(1 for r in records if r["error"])
    if broken:
        console.print(f"[red]{broken} broken or refused plugin entr{'y' if broken == 1 else 'ies'}[/]: "
                      "the others work; fix or uninstall the plugin (see the error).")
