"""The suite's verdicts: ``records`` (tests -> clauses -> outcomes, the JSON report), ``render`` (tables and the
verdict line), ``picture`` (the table as a PNG) and ``known`` (the known-failures file)."""
