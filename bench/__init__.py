"""renderq benchmarks: `python -m bench` (or `make bench`) measures the real stack and
writes BENCHMARKS.md. Never part of the test suite's timing."""
