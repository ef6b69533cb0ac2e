"""The registry's alias names: what training sets and the promotion gate moves.

Training points ``challenger`` at its best finalist; the gate moves
``champion`` (and keeps the one it replaced as ``previous``). One definition,
read by both, without either importing the other or MLflow.
"""

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
