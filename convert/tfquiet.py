"""Keep TensorFlow's, absl's and Keras's start-up and conversion chatter off stderr."""

from __future__ import annotations

import logging
import os
import warnings

from edge.quiet import quiet_native_stderr


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its logging turned down; our log lines and progress bars stay."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING lines
    for name in ("tensorflow", "absl", "keras", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras|absl|h5py)(\.|$)")
    with quiet_native_stderr():  # oneDNN and absl::InitializeLog lines come before any setting
        import tensorflow  # noqa: F401
        from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.ERROR)
