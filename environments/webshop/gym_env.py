"""``harness/WebShop-v0``: the WebShop engine as a Gymnasium environment, in-process or remote."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from environments.core.client import RemoteSession, server_health
from environments.core.engine import InvalidOptionsError
from environments.core.gym_env import TextGymEnv, text_space
from environments.webshop.engine import WebShopFactory


def observation_space(charset: str) -> spaces.Text:
    """A Text space over printable ASCII plus every character the shop can show."""
    return text_space(charset)


class WebShopEnv(TextGymEnv):
    """WebShop behind the standard Gymnasium API.

    With ``server_url=None`` the engine runs in this process (``factory_options`` go to
    :class:`~environments.webshop.engine.WebShopFactory`); otherwise it plays a session on that
    server, whose own settings then apply (asking for a different ``observation_mode`` is an error,
    not a silent mismatch). ``reset(options={"goal_index": i})`` or ``{"split": "test"}`` picks the goal.
    """

    def __init__(
        self,
        server_url: str | None = None,
        max_steps: int = 15,
        observation_mode: str = "text",
        render_mode: str | None = None,
        **factory_options: Any,
    ) -> None:
        if server_url is None:
            factory = WebShopFactory(observation_mode=observation_mode, **factory_options)
            session = factory.new_session()
            charset = factory.describe()["observation_charset"]
        else:
            if factory_options:
                raise InvalidOptionsError(
                    f"engine options {sorted(factory_options)} belong to the server at {server_url}; "
                    "start it with them instead"
                )
            engine = server_health(server_url)["engine"]
            if engine.get("observation_mode") != observation_mode:
                raise InvalidOptionsError(
                    f"the server at {server_url} serves observation_mode {engine.get('observation_mode')!r}, "
                    f"not {observation_mode!r}"
                )
            charset = engine["observation_charset"]
            session = RemoteSession(server_url)
        super().__init__(session, max_steps, observation_space(charset), render_mode=render_mode)
