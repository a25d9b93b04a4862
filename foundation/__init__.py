"""The floor every layer of the project stands on: where the benchmark data is, and the files we keep.

- :mod:`foundation.data`: the data location, its manifest and checksums, the cache directory.
- :mod:`foundation.jsonl`: the one JSON Lines / JSON reader and writer (atomic, crash-tolerant).
- :mod:`foundation.records`: the run-record schema shared by the harness (writer) and the leaderboard.
- :mod:`foundation.registry`: the one plugin registry (entry points; one rule for built-ins, clashes, broken plugins).
- :mod:`foundation.errors`: :class:`~foundation.errors.ConfigError`, what every layer raises for a bad config.

It imports nothing else of ours and nothing beyond the standard library, so environments, agents,
trainers, the harness and the leaderboard can all import it without reaching up a layer (the layers
contract in ``pyproject.toml`` checks this).
"""
