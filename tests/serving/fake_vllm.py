"""A stand-in for vLLM's server process, for testing the supervisor.

    python -m tests.serving.fake_vllm --port P [--ready-after S] [--die-after S]
        [--ignore-sigterm] [--child-pidfile F]

Serves ``/health`` once ready, may die on its own, may ignore SIGTERM, and may
start a child of its own (as vLLM starts its engine processes) whose pid it
writes to a file.
"""

from __future__ import annotations

import argparse
import http.server
import signal
import subprocess
import sys
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--die-after", type=float)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--child-pidfile")
    args = parser.parse_args()
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.child_pidfile:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(args.child_pidfile, "w") as f:
            f.write(str(child.pid))
    print("INFO fake vLLM loading weights", flush=True)
    ready_at = time.monotonic() + args.ready_after

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/health" and time.monotonic() >= ready_at
            self.send_response(200 if ok else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.die_after is not None:
        time.sleep(args.die_after)
        print("ERROR fake vLLM: out of memory", flush=True)
        sys.exit(3)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
