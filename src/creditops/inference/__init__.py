"""The compiled scorer and its contributions: one scoring path for serving and batch."""
