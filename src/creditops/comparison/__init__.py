"""Champion and challenger side by side on the traffic the challenger shadowed.

``figures`` (pure): agreement, swap sets, score PSI, rank correlation,
realised and estimated ROC AUC; ``run``: ``creditops compare`` (the inference
and shadow logs in, JSON + HTML + an MLflow run out).
"""
