"""Batch scoring of a file: chunks, CSV/Parquet in and out, local and Dask engines."""
