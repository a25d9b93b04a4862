"""The one error a bad configuration raises, in every layer (trainer configs, ``harness eval`` configs).

It lives at the floor so that the trainers (``prism_train.config``) and the harness
(``harness.config``) raise the same class and a caller catches one thing.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names every bad field by its dotted path."""
