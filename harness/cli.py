"""The ``harness`` command line: one verb per job, each defined in ``harness.commands``.

Command modules import nothing heavy at import time (no torch, no engines), so ``harness --help``
stays instant; the work is imported inside each command.
"""

from __future__ import annotations

import logging

import typer

from harness.commands import env, eval, leaderboard, models, rollout, routers, train

app = typer.Typer(
    name="harness",
    help="Train and compare LLM agents on WebShop and ALFWorld: which data to imitate (SFT), "
    "which to explore (RL), and at what compute cost.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("eval")(eval.eval_command)
app.add_typer(env.app, name="env")
app.command("leaderboard")(leaderboard.leaderboard)
app.add_typer(models.app, name="models")
app.command("rollout")(rollout.rollout)
app.add_typer(routers.app, name="routers")
app.add_typer(train.app, name="train")
app.command("probe")(train.probe)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(  # on stderr, so that stdout stays the command's output (e.g. `--json` listings)
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=True)],
    )


if __name__ == "__main__":
    app()
