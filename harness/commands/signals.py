"""How the long-running servers of the CLI (`env serve`, `models serve`) are stopped."""

from __future__ import annotations

import signal


def stop_on_interrupt_or_term() -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM (``docker stop``, ``kill``) raise KeyboardInterrupt, so a
    server stops cleanly on either. Set explicitly because a process started as a background job of a
    non-interactive shell inherits SIGINT ignored, and Python then leaves it ignored: such a server
    would never stop on Ctrl-C."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
