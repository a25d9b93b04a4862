"""The WebShop benchmark files (``EnvSpec.data_files``): where each sits under the data root, its
fingerprint and its public origin, so that a missing or different file fails loudly (:mod:`foundation.data`)."""

from __future__ import annotations

from foundation.data import DataFile

_GDRIVE = "https://drive.google.com/uc?id="
_RAW = "https://raw.githubusercontent.com/princeton-nlp/WebShop/master/baseline_models/data/"

CATALOGUE_FILE = DataFile(
    "webshop/items_shuffle_1000.json",
    2748120,
    "35e1e1b62815dcb5fc3713d3b06b2ebebda6b65f670fb1c0bbfa350aa23e5c8d",
    "WebShop setup.sh small catalogue (" + _GDRIVE + "1EgHdxQ_YxqIQlvvq5iKlCrkEKR6-j0Ib)",
)
ATTRIBUTES_FILE = DataFile(
    "webshop/items_ins_v2_1000.json",
    147099,
    "f88a36314a397b53b3d9c3fa5878e5f7b26d35019a51ec83fbedeca61a948f6f",
    "WebShop setup.sh (" + _GDRIVE + "1IduG0xl544V_A_jv3tHXC0kyFi7PnyBu), also WooooDyy/AgentGym",
)
HUMAN_INSTRUCTIONS_FILE = DataFile(
    "webshop/items_human_ins_1000.json",
    5640,
    "8bc0ae02b37351395091c55b29352ba21a26a231d093c151cf1a83847ca66359",
    "derived from WebShop items_human_ins.json (" + _GDRIVE + "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O)",
)
HUMAN_GOALS_FILE = DataFile(
    "webshop/human_goals.json",
    999419,
    "b68746ed66cd31fdc5f70eb3f5831a46b38163563b57a66ddcab8fd60ee0cbdc",
    _RAW + "human_goals.json",
)
GOAL_QUERY_MAP_FILE = DataFile(
    "webshop/goal_query_map.json",
    244809,
    "1524f438ffbc51c7e308e635d7d9e14fa696b08f5d4300922d454ef0105cea86",
    _RAW + "goal_query_map.json",
)
CHATSHOP_GOALS_FILE = DataFile(
    "webshop/chatshop_goals.json",
    1981119,
    "7d92fe72a3303746fdf88740b194faa3a2e24c3250aa931c4f53e3522505c3c8",
    "https://github.com/sanxing-chen/ChatShop (data/)",
)

DATA_FILES = (CATALOGUE_FILE, ATTRIBUTES_FILE, HUMAN_INSTRUCTIONS_FILE, HUMAN_GOALS_FILE, GOAL_QUERY_MAP_FILE,
              CHATSHOP_GOALS_FILE)
