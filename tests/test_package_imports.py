"""fastsam's top-level names load lazily, and stay the functions they name after their submodules load."""
from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_build_sam_stays_the_function_after_its_submodule_is_imported():
    # Importing fastsam.build_sam (as the predictor tests' fixtures do, directly or through another module)
    # must not turn `from fastsam import build_sam` into the module.
    out = _run("import fastsam.build_sam, fastsam.predictor\n"
               "from fastsam import build_sam, sam_model_registry\n"
               "print(callable(build_sam), sorted(sam_model_registry)[0])")
    assert out == "True default"


def test_importing_fastsam_does_not_import_torch():
    assert _run("import sys, fastsam\nprint('torch' in sys.modules)") == "False"
