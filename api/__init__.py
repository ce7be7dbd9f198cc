import os

# The service's processes (API, workers) share few cores with each other; OpenMP's
# default busy-waiting threads then steal them (bench/ranker.py measured a 2-thread
# scoring p99 of 300+ ms instead of 13 ms). Must be set before torch is imported,
# which every entry point does through this package.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
