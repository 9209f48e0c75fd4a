"""``python -m fp8ref.llamafactory COMMAND ...``: LLaMA-Factory's command line with fp8ref's FP8 helpers."""

import sys

from fp8ref.llamafactory import main

sys.exit(main())
