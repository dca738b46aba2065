"""Simulated devices speaking the real protocols over real links, for the demo, tests and benchmarks."""
