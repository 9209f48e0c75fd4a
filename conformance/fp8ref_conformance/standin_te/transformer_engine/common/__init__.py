"""Stand-in transformer_engine of the fp8ref conformance suite; it has no kernels."""

__fp8_conformance_standin__ = True
