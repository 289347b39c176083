"""Benchmarks: the engine next to the naive approach, FAISS and the hardware ceiling.

`python -m bench` runs them all and writes bench/RESULTS.md, results.json and results.png.
"""
