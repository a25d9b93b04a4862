"""The ALFWorld benchmark files (``EnvSpec.data_files``): the game archive, its fingerprint and origin."""

from __future__ import annotations

from foundation.data import DataFile

GAMES_ARCHIVE = DataFile(
    "alfworld/json_2.1.1.tar.xz",
    6488072,
    "99dcc7e52d0bed3eeb8a28a8f5c272d0f2b8aeaee193793c4859f2a6e56455bf",
    "ALFWorld json_2.1.1 game files (run `alfworld-download` with internet access, or "
    "https://github.com/alfworld/alfworld releases), packed as json_2.1.1.tar.xz",
)

DATA_FILES = (GAMES_ARCHIVE,)
