"""ccgate benchmark: wrk against nginx directly and through ccgate (see docs/benchmarks.md)."""
