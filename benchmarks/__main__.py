"""Runs every benchmark module in turn (or those named): `python -m benchmarks [name ...]`."""

from __future__ import annotations

import importlib
import sys
import time

ALL = ("ingest", "matching", "compose", "rush", "sender", "senders", "telegram", "frontdoor")


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    failed = []
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        started = time.perf_counter()
        try:
            sys.argv = [f"benchmarks.{name}"]  # each benchmark's own options: its defaults here
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception as exc:  # one broken benchmark should not hide the others' tables
            failed.append(name)
            print(f"benchmarks.{name} failed: {type(exc).__name__}: {exc}", flush=True)
        print(f"({time.perf_counter() - started:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
