"""TensorFlow loaded without its start-up chatter on the user's screen.

TensorFlow's C++ runtime writes straight to file descriptor 2 as it loads:
"Unable to register cuDNN/cuFFT/cuBLAS factory" errors (this build registers
its CUDA plugins twice; they fail on machines with GPUs too, harmlessly),
"Could not find cuda drivers", "TF-TRT Warning: Could not find TensorRT", and
notes about oneDNN and CPU instructions. None asks anything of a user, and
every command that loads TensorFlow started with them. Python cannot filter
another library's writes to a descriptor, so the import runs with descriptor
2 pointed at a file, and what is not this chatter is written back.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings

STARTUP_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory"
    r"|Could not find cuda drivers"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
)


def without_startup_noise(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if not STARTUP_NOISE.search(line))


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (once); whatever else it writes to stderr meanwhile still shows."""
    if "tensorflow" in sys.modules:
        return
    # Google's client libraries (imported with TensorFlow and TFX) warn every process of
    # versions this project pins (Python 3.11, google-cloud-storage 2): not the user's choice.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    sys.stderr.flush()
    screen = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(screen, 2)
            os.close(screen)
            captured.seek(0)
            sys.stderr.write(without_startup_noise(captured.read().decode(errors="replace")))
