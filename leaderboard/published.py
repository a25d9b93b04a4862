"""Peers' published numbers: context rows, never measurements of ours.

They come from larger models on GPUs (see docs/models-and-serving.md, "Peers' published numbers"),
carry no compute we measured and no interval, and are therefore shown in their own clearly labelled
table and kept out of every plot, ranking, highlight and frontier. Values are keyed by the metric
keys of ``leaderboard.metrics`` (``split:valid_seen`` is ALFWorld's seen split).
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLISHED_LABEL = "published, different model/hardware"


@dataclass(frozen=True)
class PublishedRow:
    source: str
    model: str
    method: str
    env: str
    values: dict[str, float]
    note: str


_GIGPO = "GiGPO paper"
_GIGPO_NOTE = "3 seeds, group size 8; no interval published"
# method: (ALFWorld 1.5B, ALFWorld 7B, WebShop 1.5B score / success, WebShop 7B score / success)
_GIGPO_TABLE = {
    "prompting": (4.1, 14.8, (23.1, 5.2), (26.4, 7.8)),
    "ReAct": (12.8, 31.2, (40.1, 11.3), (46.2, 19.5)),
    "PPO": (54.4, 80.4, (73.8, 51.5), (81.4, 68.7)),
    "GRPO": (72.8, 77.6, (75.8, 56.8), (79.3, 66.1)),
    "GiGPO": (86.7, 90.8, (83.1, 65.0), (84.4, 72.8)),
}
# method: (WebShop average reward, ALFWorld seen, ALFWorld unseen), Llama-2-7B-Chat
_ETO_TABLE = {"SFT": (63.1, 60.0, 67.2), "ETO": (67.4, 68.6, 72.4)}


def _gigpo_rows() -> list[PublishedRow]:
    rows = []
    for method, (alf_small, alf_large, shop_small, shop_large) in _GIGPO_TABLE.items():
        for size, alf, (score, success) in (("1.5B", alf_small, shop_small), ("7B", alf_large, shop_large)):
            model = f"Qwen2.5-{size}-Instruct"
            rows.append(PublishedRow(_GIGPO, model, method, "alfworld", {"success": alf}, _GIGPO_NOTE))
            rows.append(PublishedRow(_GIGPO, model, method, "webshop", {"score": score, "success": success},
                                     _GIGPO_NOTE))
    return rows


def _eto_rows() -> list[PublishedRow]:
    rows = []
    for method, (shop, seen, unseen) in _ETO_TABLE.items():
        rows.append(PublishedRow("ETO paper", "Llama-2-7B-Chat", method, "webshop", {"score": shop}, "average reward"))
        rows.append(PublishedRow("ETO paper", "Llama-2-7B-Chat", method, "alfworld",
                                 {"split:valid_seen": seen, "split:valid_unseen": unseen}, "seen / unseen splits"))
    return rows


PUBLISHED: tuple[PublishedRow, ...] = (*_gigpo_rows(), *_eto_rows())


def published_rows(env: str) -> list[PublishedRow]:
    return [row for row in PUBLISHED if row.env == env]
