"""Speed and memory benchmarks (``python -m benchmarks.<script>``, see README.md).

Importing the package lets idle OpenMP threads sleep, as workflow jobs do
(:func:`islim.threads.wait_passively`); it runs before any script imports torch.
"""

from islim.threads import wait_passively

wait_passively()
