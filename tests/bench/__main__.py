"""Run every benchmark in turn: `python -m tests.bench [NAME...]` (names like `dns`, `webhook`).

Each benchmark prints its figures; none asserts anything. Run them on a quiet
machine: they compare against references measured in the same run, but a
busy neighbour still widens the spread.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import tests.bench


def main(argv: list[str]) -> None:
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(tests.bench.__path__) if m.name.startswith("bench_"))
    wanted = argv or names
    for name in wanted:
        if name not in names:
            sys.exit(f"no benchmark {name!r}; there are: {', '.join(names)}")
    for name in wanted:
        print(f"== {name} ==", flush=True)
        importlib.import_module(f"tests.bench.bench_{name}").main([])
        print(flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
