"""How the long-running commands of the CLI (`env serve`, `models serve`, `eval`) are stopped."""

from __future__ import annotations

import signal


def stop_on_interrupt_or_term() -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM (``docker stop``, ``kill``) raise KeyboardInterrupt, so a
    server or a run stops cleanly on either. Set explicitly because a process started as a background
    job of a non-interactive shell inherits SIGINT ignored, and Python then leaves it ignored: such a
    process would never stop on Ctrl-C."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
