"""The longer ``--help`` texts of the commands, kept out of the command functions."""

SCORE_HELP = """Score a file in chunks: probability, decision, reasons; contract breaches to a rejects file.

A row with a bad cell (text in a number column, anywhere in the file) goes
to the rejects file with its row number and the rule. Both files appear
only when the whole run succeeds: a failed run writes neither and leaves
earlier ones as they were.
"""


MONITOR_HELP = """Drift and quality of a traffic window against the champion's training data.

A --current CSV holds the 13 contract features (Seniority ... Price, text
categories, money with cents; rownames or an unnamed index column is
ignored) and may add one outcome column (Status or outcome: good/bad, or
the original pipeline's target: 0 = bad, 1 = good; empty when unknown), a
score (probability, 0-1; else the champion scores the rows) and the log's
request_id, created_at, model_version, decision, threshold. The original
pipeline's prediction column is accepted and ignored (its model, not the
champion). A missing feature, two outcome columns or any other column is
refused. The original pipeline's integer category codes (Home 0-5, Marital
0-4, Records 0-1, Job 0-3, in its value table's order) are read with
[monitor] original_codes = true; off (the default), each is a broken rule
naming the switch. Rows that break the contract are counted by field and
rule (a data-quality finding, in the summary, MLflow and data-quality-*
reports) and left out of the drift and quality figures.

--by month computes every application month of the inference log (and
model version) instead: volume, approval rate, PSI, matured share, realised
bad rate / ROC AUC / KS on matured outcomes, vintage curves; the rows are
upserted into the monitoring table, in the inference log's database.
"""
