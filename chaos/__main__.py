"""Failure drills: ``python -m chaos [DRILL] [OPTIONS]`` (``make chaos``). Drills: sends (default),
decisions, runs."""

from __future__ import annotations

import sys

DRILLS = {"sends": "chaos.sends", "decisions": "chaos.decisions", "runs": "chaos.runs"}


def main() -> int:
    args = sys.argv[1:]
    name = args.pop(0) if args and not args[0].startswith("-") else "sends"
    if name not in DRILLS:
        print(f"unknown drill {name!r}; drills: {', '.join(DRILLS)}", file=sys.stderr)
        return 2
    module = __import__(DRILLS[name], fromlist=["main"])
    code: int = module.main(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
