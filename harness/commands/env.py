"""``harness env``: list, serve and play the installed environments."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import typer
from rich.console import Console

from harness.commands.plugins import show_entries
from harness.commands.signals import stop_on_interrupt_or_term

app = typer.Typer(help="Environment servers and interactive play.", no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)


def parse_options(pairs: list[str], hint: str = "--option") -> dict[str, Any]:
    """``key=value`` pairs into factory options; values are read as JSON when they parse, else text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=hint)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _spec(name: str):
    from environments.core.registry import UnknownEnvError, get_env_spec

    try:
        return get_env_spec(name)
    except UnknownEnvError as exc:
        raise typer.BadParameter(str(exc), param_hint="ENV") from None


def _make_factory(spec, options: dict[str, Any]):
    try:
        return spec.make_factory(**options)
    except TypeError as exc:
        allowed = ", ".join(sorted(spec.factory_options)) or "none"
        raise typer.BadParameter(f"{exc} (options for {spec.name}: {allowed})", param_hint="--option") from None


@app.command("list")
def list_envs(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False
              ) -> None:
    """Show the installed environments (built-ins and plugins; a broken plugin with its error)."""
    from environments.core.registry import REGISTRY

    def details(spec) -> dict[str, Any]:
        return {"gymnasium id": spec.gym_id, "step cap": spec.default_max_steps,
                "options": dict(spec.factory_options), "description": spec.description}

    show_entries(console, REGISTRY.entries(), details, ["gymnasium id", "step cap", "options", "description"],
                 as_json)


@app.command()
def serve(
    name: str = typer.Argument(..., metavar="ENV", help="Environment name (see `harness env list`)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; use 0.0.0.0 only inside a container."),
    port: int = typer.Option(3000, help="TCP port (0 picks a free one)."),
    max_sessions: int = typer.Option(64, min=1, help="Live sessions before new ones get HTTP 429."),
    idle_timeout: float = typer.Option(900.0, min=1.0, help="Seconds before an idle session expires."),
    threads: int | None = typer.Option(None, min=1, help="WSGI worker threads (default: the environment's own)."),
    wsgi: str = typer.Option("waitress", help="WSGI server: waitress (production) or werkzeug (debug)."),
    option: list[str] = typer.Option([], "--option", "-o", help="Engine option KEY=VALUE (repeatable)."),
) -> None:
    """Serve an environment over HTTP: the JSON API for agents (and pages for people, where the
    environment has them)."""
    from environments.core.server import RunningServer, ServerSettings, create_app

    spec = _spec(name)
    try:
        settings = ServerSettings(
            host=host,
            port=port,
            max_sessions=max_sessions,
            idle_timeout_s=idle_timeout,
            threads=threads or spec.server_threads,
            wsgi=wsgi,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    factory = _make_factory(spec, parse_options(option))
    server = RunningServer(create_app(spec.name, factory, settings, spec.blueprints(factory)), settings)
    stop_on_interrupt_or_term()
    try:
        with console.status(f"{spec.name}: warming up the engine"):
            server.warm_up()
        console.print(f"[bold green]{spec.name}[/] serving on [link={server.url}]{server.url}[/] "
                      f"(API under {server.url}/api; Ctrl-C stops)")
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
def play(
    name: str = typer.Argument(..., metavar="ENV", help="Environment name (see `harness env list`)."),
    server_url: str = typer.Option(None, help="Play against a running server instead of in-process."),
    task: str = typer.Option(None, help='Reset options as JSON, e.g. \'{"goal_index": 3}\'.'),
    max_steps: int = typer.Option(None, min=1, help="Step cap (default: the environment's)."),
    option: list[str] = typer.Option([], "--option", "-o", help="Engine option KEY=VALUE (repeatable)."),
) -> None:
    """Play an episode yourself in the terminal: type actions, see observations and the reward."""
    import gymnasium as gym

    import environments  # noqa: F401 - registers the gymnasium ids

    spec = _spec(name)
    try:
        reset_options = json.loads(task) if task else None
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--task") from None
    env = gym.make(
        spec.gym_id,
        server_url=server_url,
        max_steps=max_steps or spec.default_max_steps,
        **parse_options(option),
    ).unwrapped
    try:
        observation, info = env.reset(options=reset_options)
        total = 0.0
        while True:
            console.rule(f"step {info['steps']} / {info['max_steps']}")
            console.print(observation, markup=False, highlight=False)
            console.print(f"[dim]actions: {json.dumps(info.get('available_actions'))[:2000]}[/]")
            action = console.input("[bold]> [/]").strip()
            if action in {"quit", "exit"}:
                break
            observation, reward, terminated, truncated, info = env.step(action)
            total += reward
            if not info.get("action_valid", True):
                console.print("[yellow]that action was not valid here[/]")
            if terminated or truncated:
                console.print(observation, markup=False, highlight=False)
                console.print(f"[bold]episode over[/] ({'finished' if terminated else 'step cap'}), reward {total:.3f}")
                break
    except (EOFError, KeyboardInterrupt):
        console.print()
    finally:
        env.close()
