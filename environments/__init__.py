"""Text environments (WebShop, ALFWorld, and any plugin's): engines, servers, Gymnasium clients, experts.

Importing this package registers the Gymnasium id of every installed environment (``EnvSpec.gym_id``,
with ``max_episode_steps`` its ``default_max_steps``); the engines themselves load lazily.
"""

from environments.core.registry import env_specs

for _spec in env_specs().values():
    _spec.register_gym()
