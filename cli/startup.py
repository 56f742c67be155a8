"""TensorFlow loaded without its start-up chatter on the user's screen.

TensorFlow's C++ runtime writes straight to file descriptor 2 as it loads:
"Unable to register cuDNN/cuFFT/cuBLAS factory" errors (this build registers
its CUDA plugins twice; they fail on machines with GPUs too, harmlessly),
"Could not find cuda drivers", "TF-TRT Warning: Could not find TensorRT", and
notes about oneDNN and CPU instructions. None asks anything of a user, and
every command that loads TensorFlow started with them; the import runs with
them filtered out (imagedata/native_stderr.py).
"""

from __future__ import annotations

import re
import sys
import warnings

from imgclf.imagedata.native_stderr import native_stderr_without, without

STARTUP_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory"
    r"|Could not find cuda drivers"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* rebuild TensorFlow"
)


def without_startup_noise(text: str) -> str:
    return without(STARTUP_NOISE, text)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (once); whatever else it writes to stderr meanwhile still shows."""
    if "tensorflow" in sys.modules:
        return
    # Google's client libraries (imported with TensorFlow and TFX) warn every process of
    # versions this project pins (Python 3.11, google-cloud-storage 2): not the user's choice.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    with native_stderr_without(STARTUP_NOISE):
        import tensorflow  # noqa: F401
