"""LiteRT (TFLite) inference: `ai-edge-litert`, or `tflite-runtime` where only that is installed.

The interpreter is chosen once, lazily, from INTERPRETERS; a gateway without either gets a
ConfigError naming the package to install.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from prognos.edge.features import FloatArray
from prognos.errors import ConfigError

INTERPRETERS = {
    "ai-edge-litert": "ai_edge_litert.interpreter:Interpreter",
    "tflite-runtime": "tflite_runtime.interpreter:Interpreter",
}


def interpreter_class() -> Any:
    for target in INTERPRETERS.values():
        module_name, _, attribute = target.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except ImportError:
            continue
    raise ConfigError("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime)")


class TfliteModel:
    """One .tflite model with a float32 (batch, features) input and a float32 output."""

    def __init__(self, model_content: bytes) -> None:
        try:
            self._interpreter = interpreter_class()(model_content=model_content, num_threads=1)
        except ValueError as exc:
            raise ConfigError(f"not a valid TFLite model: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_width = int(self._input["shape"][-1])
        self._batch = -1

    def predict(self, inputs: FloatArray) -> FloatArray:
        batch = np.ascontiguousarray(np.atleast_2d(inputs), dtype=np.float32)
        if batch.shape[1] != self.input_width:
            raise ValueError(f"model takes {self.input_width} inputs, got {batch.shape[1]}")
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        return np.asarray(self._interpreter.get_tensor(self._output["index"]), dtype=np.float64)
