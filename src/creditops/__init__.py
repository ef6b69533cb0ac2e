"""creditops: credit-risk scoring with its whole life cycle.

Train and compare model families under a tracked search, promote a champion
through a logged gate, serve it over HTTP, watch the traffic drift and retrain
when the model degrades. Nothing runs on import.
"""

__version__ = "0.1.0"
