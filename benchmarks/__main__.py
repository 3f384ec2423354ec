"""``make bench``: run every benchmark and print its table."""

from __future__ import annotations

from . import engine_overhead

if __name__ == "__main__":
    engine_overhead.main()
