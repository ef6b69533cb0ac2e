"""The longer ``--help`` texts of the commands, kept out of the command functions."""

SCORE_HELP = """Score a file in chunks: probability, decision, reasons; contract breaches to a rejects file.

A row with a bad cell (text in a number column, anywhere in the file) goes
to the rejects file with its row number and the rule. Both files appear
only when the whole run succeeds: a failed run writes neither and leaves
earlier ones as they were.
"""


MONITOR_HELP = """Drift and quality of a traffic window against the champion's training data.

A --current CSV holds the 13 contract features (Seniority ... Price, text
categories; rownames is ignored) and may add the outcome (Status or
outcome: good/bad, empty when unknown), a score (probability, 0-1; else the
champion scores the rows) and the log's request_id, created_at,
model_version, decision, threshold. A missing feature or any other column
is refused. Rows that break the contract are counted by field and rule (a
data-quality finding, in the summary, MLflow and data-quality-* reports)
and left out of the drift and quality figures.
"""
