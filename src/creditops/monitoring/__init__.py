"""Drift and quality monitoring of the served champion.

``psi`` holds the pure figures (PSI, bands, quality of labelled rows);
``result`` the record of one run (also the summary file's format);
``window`` reads the current window (the inference log or a CSV);
``reports`` holds Evidently and the report files; ``run`` computes the
figures and runs the stage (``creditops monitor``), logging it to MLflow.
"""
