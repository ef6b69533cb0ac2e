"""The tracked model search: CV search per family, MLflow tracking, the shared multi-process study."""
