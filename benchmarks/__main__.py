"""``make bench``: run every benchmark and print its table."""

from __future__ import annotations

from . import engine_overhead, lease_policies

if __name__ == "__main__":
    engine_overhead.main()
    print()
    lease_policies.main([])
