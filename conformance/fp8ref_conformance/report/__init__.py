"""The suite's verdicts: ``session`` (what a session recorded, and its report), ``records`` (tests -> clauses ->
outcomes, the JSON report), ``outcomes`` (one test's outcome), ``causes`` (root causes), ``render`` (tables and the
verdict line), ``document`` (the Markdown file), ``picture`` (the table as a PNG) and ``known`` (the known-failures
file)."""
