"""Load a TFLite model with ai-edge-litert, falling back to tflite-runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.errors import ModelError
from edge.quiet import quiet_native_stderr


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "no TFLite runtime: pip install ai-edge-litert (or tflite-runtime on Python 3.11 aarch64)"
            ) from None
    return Interpreter


def load_interpreter(path: str | Path, threads: int = 2) -> Any:
    """An allocated interpreter for `path`; ModelError (one line) if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    interpreter_class = _interpreter_class()
    try:
        with quiet_native_stderr():  # "Created TensorFlow Lite XNNPACK delegate", native errors
            interpreter = interpreter_class(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a valid TFLite model ({first})") from None
    return interpreter
