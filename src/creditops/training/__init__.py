"""The tracked model search, stage by stage.

``search`` (CV, samplers, one family's search; no MLflow) and ``evidence``
(a finalist's refit, metrics, fairness, importance, model card; no MLflow) are
the pure core; ``tracking`` logs a run, its trials and its finalists through
the MLflow client it is given; ``shared_study`` and ``local_workers`` share a
search between processes; ``run`` is the training run itself; ``sections``
holds the config sections it reads.
"""
