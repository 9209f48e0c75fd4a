"""Stand-in torchaudio for the LLaMA-Factory test environment (tox -e llamafactory), never installed.

LLaMA-Factory 0.9.5 requires torchaudio and imports it in its multimodal plugin, which ``run_exp`` imports even for
text-only runs. No torchaudio is published for torch 2.13 CPU, and the one pip brings does not load beside it, so
tox uninstalls it and the tests put this empty package on the children's PYTHONPATH (no audio is ever processed).
"""
