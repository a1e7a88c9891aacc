"""bench/runlib.py -- bench/run as a module, for the probes that reuse its
helpers (start, stop, wait_ready, free_port, log, die).  bench/run is a
command and has no .py suffix, so a plain import cannot find it."""
import importlib.machinery
import importlib.util
import os


def load():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run")
    loader = importlib.machinery.SourceFileLoader("bench_run", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench_run", loader))
    loader.exec_module(module)
    return module
