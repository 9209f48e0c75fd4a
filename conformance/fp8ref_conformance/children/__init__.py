"""Programs the suite runs in child processes, each started as ``python -m fp8ref_conformance.children.NAME``
(or under ``torch.distributed.run -m``) by :mod:`..kit.processes`:

- ``probe``: contract calls in a fresh interpreter where some packages are hidden (C4, C7, C8b);
- ``fsdp_float8``: FSDP2 with float8 all-gather on two CPU ranks (C15);
- ``deepspeed_trainer``: the HF ``Trainer`` under DeepSpeed ZeRO (C16).
"""
