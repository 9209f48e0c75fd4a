"""Stand-in transformer_engine of the fp8ref conformance suite; it has no kernels."""


def check_mxfp8_support():
    return False, "conformance stand-in: no MXFP8"
