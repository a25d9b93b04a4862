"""Text environments (WebShop, ALFWorld): engines, servers, Gymnasium clients and experts.

Importing this package registers the Gymnasium ids; the engines themselves load lazily.
"""

import gymnasium

gymnasium.register(id="harness/WebShop-v0", entry_point="environments.webshop.gym_env:WebShopEnv")
gymnasium.register(id="harness/ALFWorld-v0", entry_point="environments.alfworld.gym_env:ALFWorldEnv")
