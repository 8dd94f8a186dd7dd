"""Code that builds small, real ONNX models (and calibration data) for the toolchain tests."""
