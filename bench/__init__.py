"""Benchmarks (run as modules from the repository root: `uv run python -m bench.<name>`)."""
