"""Benchmarks and evaluation tools that the CLI runs (device bench, evaluate-photos,
bench-colour, bench-followup, bench-stream): they measure the device, they are not in a scan's path."""
