"""The scoring service: FastAPI app, the served champion, the inference log.

``app.create_app(serve_config, mlflow_config)`` builds the application around
one ``service.ScoringService``; ``routes`` holds the HTTP routes; ``store``
holds the inference log that monitoring reads, written by ``log_writer``.
"""
