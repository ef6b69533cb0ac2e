"""The ``creditops`` command line."""
