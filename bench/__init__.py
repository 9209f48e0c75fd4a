"""fp8ref benchmarks: bf16 against torchao and Transformer Engine FP8, with a report (``python -m bench.report``)."""
