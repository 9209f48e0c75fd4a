"""The script each process of a distributed LLaMA-Factory run starts under ``python -m fp8ref.llamafactory train``.

LLaMA-Factory's launcher runs ``torchrun ... <launcher file> ARGS``; :func:`fp8ref.llamafactory.run` points that file
here, so that every process swaps in fp8ref's FP8 helpers before LLaMA-Factory's ``run_exp``.
"""

import sys

if __name__ == "__main__":
    # Run as a script, this folder is sys.path[0]; take it off so that nothing here shadows a top-level module.
    if sys.path and sys.path[0] and __file__.startswith(sys.path[0]):
        sys.path.pop(0)
    from fp8ref.errors import FP8Error
    from fp8ref.llamafactory import DropInError, run_worker, show_fp8ref_logs

    show_fp8ref_logs()
    try:
        sys.exit(run_worker(sys.argv[1:]))
    except (DropInError, FP8Error) as exc:
        print(f"fp8ref.llamafactory: error: {exc}", file=sys.stderr)
        sys.exit(2)
