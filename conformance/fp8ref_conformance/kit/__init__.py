"""Support code of the clause tests, one idea per module.

- ``contract``: the five functions, the contract's names and rules (C9, C17b), argument objects;
- ``env``, ``logs``, ``messages``: environment snapshots, log capture, what a message names;
- ``capabilities``, ``packages``: what this machine can run (packages, CUDA FP8); hiding a package;
- ``isolation``: putting process state back after a test or a run;
- ``standin_te``: the stand-in Transformer Engine (package data under ``standin_te/``);
- ``models``, ``accelerators``, ``numerics``, ``trainer``: the models, the prepare checks, C11's numerics and
  the tiny HF ``Trainer`` run; ``trainer_verify``: C12's Trainer runs; ``compiled_forms``: the compiled models C12e
  names;
- ``strategies``: hypothesis strategies and the suite's settings;
- ``verify_outcome``: how a call of ``verify_fp8_status`` is judged (loud, quiet, the C12e notice);
- ``verdicts``, ``te_recipes``: blocked verdicts; the TE recipe in effect at a forward;
- ``processes``: starting the suite's child processes (probe, torchrun, DeepSpeed) in one way, and handing a child
  started early to its test; ``children``: the registry of the children, each declared once; ``early``: what a child's
  early start may use; ``fsdp2_ranks``, ``deepspeed_run``: the C15 and C16 children's launchers and what a test reads
  of them; ``forks``: the training children forked from the test process before any test ran.

Nothing here uses the implementation under test beyond the five contract functions.
"""
