"""``harness models``: list and prepare the default models, list policies, serve a model over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from harness.commands.plugins import show_entries
from harness.commands.signals import stop_on_interrupt_or_term

app = typer.Typer(help="Default models, policies, and an OpenAI-compatible server.", no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)


def _size(path) -> str:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f"{total / 2**20:.0f} MiB"


@app.command("list")
def list_models() -> None:
    """Show the named models and whether they are prepared in the cache."""
    from agents.models import RECIPES, is_prepared, model_path

    table = Table("aliases", "prepared", "size", "path", "description")
    table.columns.insert(0, Column("name", no_wrap=True))
    for recipe in RECIPES.values():
        ready = is_prepared(recipe.name)
        path = model_path(recipe.name)
        table.add_row(recipe.name, ", ".join(recipe.aliases), "yes" if ready else "no (harness models prepare)",
                      _size(path) if ready else "", str(path), recipe.description)
    console.print(table)
    console.print("Any model directory (or hub id, where the network allows) works as -o model=PATH too.")


@app.command()
def prepare(
    name: list[str] = typer.Argument(None, help="Models to prepare (default: all)."),
    force: bool = typer.Option(False, help="Rebuild even if already prepared."),
) -> None:
    """Build the named models into the cache once (SmolLM2 from its GGUF package, the tiny test model)."""
    from agents.models import RECIPES
    from agents.models import prepare as prepare_model

    for model in name or list(RECIPES):
        try:
            path = prepare_model(model, force=force)
        except (ValueError, FileNotFoundError) as exc:
            raise typer.BadParameter(str(exc), param_hint="NAME") from None
        console.print(f"[green]ready[/] {model}: {path}")


@app.command()
def policies(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False
             ) -> None:
    """Show the installed policies (built-ins and plugins of the harness.policies entry-point group; a broken
    plugin with its error)."""
    from agents.registry import REGISTRY

    show_entries(console, REGISTRY.entries(), lambda spec: {"options": dict(spec.options),
                                                            "description": spec.description},
                 ["options", "description"], as_json)


@app.command()
def serve(
    model: str = typer.Argument(..., help="Model directory or prepared name (smollm2, tiny-llama)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0 picks a free one)."),
    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16."),
    adapter: str = typer.Option(None, help="PEFT LoRA adapter directory."),
    threads: int = typer.Option(None, min=1, help="torch CPU threads."),
    name: str = typer.Option(None, help="Model name clients use (default: the directory name)."),
) -> None:
    """Serve a transformers model on /v1/completions and /v1/chat/completions, with logprobs and n."""
    from agents.backends.hf import TransformersBackend
    from agents.models import resolve_model
    from agents.server import OpenAIServer, ServerLimits

    try:
        path = resolve_model(model)
        backend = TransformersBackend(path, dtype=dtype, adapter=adapter, threads=threads)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    server = OpenAIServer(backend, name or Path(path).name, ServerLimits(host=host, port=port))
    console.print(f"serving [bold]{name or Path(path).name}[/] on {server.url}/v1 (Ctrl-C stops)")
    stop_on_interrupt_or_term()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")
