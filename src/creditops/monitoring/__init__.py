"""Drift and quality monitoring of the served champion."""
