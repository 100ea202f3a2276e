"""Benchmarks of the project: each module is a script (`python3 -m benchmarks.<name>`) that prints
one JSON object as its last line of stdout."""
