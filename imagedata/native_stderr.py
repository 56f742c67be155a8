"""What native code writes to the screen, filtered line by line.

TensorFlow's C++ runtime and the image libraries it links (libjpeg, libpng)
write straight to file descriptor 2: at start-up (CUDA plugins registered
twice, CPU instruction notes) and for every image that fails to decode
("Local rendezvous is aborting with status: INVALID_ARGUMENT", libjpeg's
"Premature end of JPEG file"). A command that reports each bad file itself,
naming it and why, should not print the same failure again in TensorFlow's
words. Python cannot filter another library's writes to a descriptor, so the
work runs with descriptor 2 pointed at an unnamed temporary file, and what is
not noise is written back to the screen when it ends.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def without(noise: re.Pattern, text: str) -> str:
    return "".join(line for line in text.splitlines(True) if not noise.search(line))


@contextmanager
def native_stderr_without(noise: re.Pattern) -> Iterator[None]:
    """Lines matching `noise` never reach the screen; the rest does, when this ends."""
    sys.stderr.flush()
    screen = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(screen, 2)
            os.close(screen)
            captured.seek(0)
            sys.stderr.write(without(noise, captured.read().decode(errors="replace")))
