"""In-process environments for the rollout engine, on engine factories that outlive one rollout.

An engine with worker processes (ALFWorld: a pool of TextWorld workers, about 10 s to start) must not
be started per environment, nor per rollout: :class:`InProcessEnvs` makes every Gymnasium environment
of one configuration on one shared factory, and :class:`InProcessEnvProviders` keeps one such maker
per configuration for a whole run (``harness eval``: every cell, phase and seed of an environment plays
on the same workers), the in-process counterpart of ``harness.distributed.RayEnvProviders``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping
from typing import Any

from environments.core.registry import EnvSpec, get_env_spec


def _takes_session(spec: EnvSpec) -> bool:
    """Whether the environment's Gymnasium entry point can play on a session someone else owns."""
    return "session" in inspect.signature(spec.gym_class()).parameters


class InProcessEnvs:
    """The rollout engine's ``make_env`` for in-process play of ``env`` with a step cap and engine options.

    Environments that accept a ``session`` share one engine factory, started at the first call and
    stopped by :meth:`close`; the others are made with the options each time.
    """

    def __init__(self, env: str, max_steps: int | None = None, env_options: Mapping[str, Any] | None = None) -> None:
        self.spec = get_env_spec(env)
        self.max_steps = max_steps or self.spec.default_max_steps
        self.env_options = dict(env_options or {})
        self._factory: Any = None
        self._lock = threading.Lock()
        self._shared = _takes_session(self.spec)

    def __call__(self) -> Any:
        if not self._shared:
            return self.spec.make_gym(self.max_steps, **self.env_options)
        with self._lock:
            if self._factory is None:
                cap = {"max_steps": self.max_steps} if "max_steps" in self.spec.factory_options else {}
                self._factory = self.spec.make_factory(**{**cap, **self.env_options})
            session = self._factory.new_session()
        return self.spec.make_gym(self.max_steps, session=session)

    @property
    def remote(self) -> bool:
        """Whether the rollout engine should step these environments from threads, several at once: true when
        the shared factory plays its games in worker processes (ALFWorld), false for engines that compute
        in this process, where threads would only contend for the interpreter."""
        return bool(getattr(self._factory, "steps_in_workers", False))

    @property
    def factory(self) -> Any:
        """The shared engine factory while it runs (None before the first environment and after :meth:`close`)."""
        return self._factory

    def close(self) -> None:
        with self._lock:
            if self._factory is not None:
                self._factory.close()
                self._factory = None


class InProcessEnvProviders:
    """One :class:`InProcessEnvs` per (environment, step cap, options) for a whole run; close it at the end."""

    def __init__(self) -> None:
        self._providers: dict[str, InProcessEnvs] = {}

    def provider(self, env: str, max_steps: int | None = None,
                 env_options: Mapping[str, Any] | None = None) -> InProcessEnvs:
        """The ``make_env`` for in-process rollouts of ``env`` with this step cap (None: the env's) and options."""
        maker = InProcessEnvs(env, max_steps, env_options)  # cheap until called: the factory starts lazily
        key = repr((env, maker.max_steps, sorted(maker.env_options.items())))
        return self._providers.setdefault(key, maker)

    def close(self) -> None:
        for maker in self._providers.values():
            maker.close()
        self._providers.clear()
