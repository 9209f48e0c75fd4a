"""Broken on purpose (for the runner's meta-tests): importing it ends the interpreter at once (exit status 3), as a
crash in a native extension would. The suite can then write no report: ``fp8ref check`` must show the
implementation as a column that did not run, with the reason, not drop it."""

from __future__ import annotations

import os

os._exit(3)
