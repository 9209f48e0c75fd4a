"""``python -m bench.report RESULTS.json --out DIR``: see :mod:`.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
