"""Failure drills: ``python -m chaos [DRILL] [OPTIONS]`` (``make chaos``).

Without a drill name every drill runs, one after the other, each in its own process with its defaults,
and a table of their accounting is printed at the end. Drills: sends, decisions, broker, websocket,
postgres, fuzz, runs (see each module's docstring, or ``python -m chaos DRILL --help``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

DRILLS = {
    "sends": "chaos.sends",
    "decisions": "chaos.decisions",
    "broker": "chaos.broker",
    "websocket": "chaos.websocket",
    "postgres": "chaos.postgres",
    "fuzz": "chaos.fuzz",
    "runs": "chaos.runs",
}


def run_all(args: list[str]) -> int:
    """Every drill in turn (``--only a,b`` picks some); the summary line each prints is tabulated."""
    names = list(DRILLS)
    if args[:1] == ["--only"] and len(args) > 1:
        names = [name for name in args[1].split(",") if name in DRILLS]
    rows: list[tuple[str, str, float, dict[str, object]]] = []
    for name in names:
        print(f"=== chaos {name}", flush=True)
        started = time.monotonic()
        process = subprocess.run(
            [sys.executable, "-m", "chaos", name], stdout=subprocess.PIPE, text=True, check=False
        )
        sys.stdout.write(process.stdout)
        summary: dict[str, object] = {}
        for line in process.stdout.splitlines():
            if line.startswith("{"):
                try:
                    summary = json.loads(line)
                except ValueError:
                    continue
        verdict = "PASS" if process.returncode == 0 else "FAIL"
        rows.append((name, verdict, time.monotonic() - started, summary))
    print("\n| drill | result | seconds | accounting |\n|---|---|---|---|")
    for name, verdict, seconds, summary in rows:
        shown = ", ".join(
            f"{key} {value}" for key, value in summary.items() if key not in ("seconds", "examples")
        )
        print(f"| {name} | {verdict} | {seconds:.0f} | {shown} |")
    return 0 if all(verdict == "PASS" for _, verdict, _, _ in rows) else 1


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        return run_all(args)
    name = args.pop(0)
    if name not in DRILLS:
        print(f"unknown drill {name!r}; drills: {', '.join(DRILLS)}", file=sys.stderr)
        return 2
    module = __import__(DRILLS[name], fromlist=["main"])
    code: int = module.main(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
