"""``make bench``: run every benchmark, each in a fresh process, and print its table.

A fresh interpreter per benchmark keeps one benchmark's heap and caches from skewing the next
one's real-time figures (the forwarding latency is measured in milliseconds).
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "benchmarks.lease_policies",
    "benchmarks.engine_overhead",
    "benchmarks.tracing_overhead",
    "benchmarks.virtual_time",
    "benchmarks.scale",
    "benchmarks.replicas",
)


def main() -> int:
    """Run each benchmark module with this interpreter; the first failure's status wins."""
    status = 0
    for index, module in enumerate(BENCHMARKS):
        if index:
            print(flush=True)
        done = subprocess.run([sys.executable, "-m", module], check=False)
        status = status or done.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
