"""The benchmark suite (``make bench``): see ``bench/run.py`` and ``BENCHMARKS.md``."""
