"""The scoring service: FastAPI app, scorer, inference log.

``app.create_app(settings)`` builds the application; ``store`` holds the
inference log that monitoring reads.
"""
