"""fp8ref: reference FP8 training helpers for Hugging Face Accelerate."""

__version__ = "0.1.0"
