"""What every end-to-end test with the real model carries: select with ``-m e2e``."""

from __future__ import annotations

import importlib.util
import os

import pytest

E2E = [
    pytest.mark.e2e,
    pytest.mark.timeout(1200),
    # CI sets INFERWATCH_E2E=required: there, a missing vLLM is a failure, not a skip.
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None and os.environ.get("INFERWATCH_E2E") != "required",
        reason="vLLM is not installed (scripts/install-cpu.sh test)",
    ),
]
