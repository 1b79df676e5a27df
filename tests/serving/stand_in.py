"""A stand-in `vllm` package: its OpenAI server answers `/health` and `/v1/models` only.

Put the returned directory on PYTHONPATH and `python -m vllm.entrypoints.openai.api_server`
runs it; `inferwatch serve` then starts it as it would start vLLM.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

STAND_IN = textwrap.dedent("""
    import argparse, http.server
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--host")
    args, _ = parser.parse_known_args()
    print("stand-in vLLM serving", flush=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": [{"id": "stand-in"}]}')

        def log_message(self, *a):
            pass

    http.server.HTTPServer((args.host, args.port), Handler).serve_forever()
""")


def stand_in_vllm(root: Path) -> Path:
    package = root / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True)
    for directory in (root / "vllm", root / "vllm" / "entrypoints", package):
        (directory / "__init__.py").write_text("")
    (package / "api_server.py").write_text(STAND_IN)
    return root
