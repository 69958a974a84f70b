"""Run the benchmarks one after another: ``python -m bench [NAME ...]`` (all of them by default).

Each benchmark is its own module with its own options (see bench/README.md); this runner uses their
defaults, prints each one's JSON result and says which failed.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("decisions", "sends", "ws_idle", "ws_push", "ws_latency", "reports")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for position, name in enumerate(names, start=1):
        print(f"[{position}/{len(names)}] bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
