"""Suite-wide pytest configuration. Keep it minimal: no autouse fixtures, no heavy imports."""

import os
import sys
import tempfile

from fixtures import *

# Bytecode: the suite starts hundreds of Python processes (agents, control planes, `heddle`
# commands, UI workers, Ray workers). Where PYTHONDONTWRITEBYTECODE=1 is set, as on the
# development machines, each compiled every module it imports from source: 2 of the 3.7 s of
# CPU an agent took to start. The run keeps compiled bytecode outside the tree instead, for
# this process and every child (as benchmarks/bench_cli.py does); nothing is written beside
# the sources, and Python checks each cached file against its source as usual.
if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
    PYCACHE = os.path.join(tempfile.gettempdir(), f"heddle-tests-pycache-{os.getuid()}")
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = PYCACHE
    sys.pycache_prefix = PYCACHE
    sys.dont_write_bytecode = False
