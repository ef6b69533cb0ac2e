"""Wall clock of the same search budget with 1 and with 2 search processes.

`python bench/distributed.py [TRIALS_PER_FAMILY] [STORAGE_URL]`: logreg + lightgbm,
5-fold CV, one thread per fit, the whole `run_training` (search, finalists,
registration) timed: 1 process fitting one fold at a time, 1 process fitting 2
folds at once (`n_jobs = 2`, what a one-machine user would otherwise run), and
2 processes. Without STORAGE_URL the 2-process run shares its studies
through a journal file; pass a PostgreSQL URL (scripts/postgres.sh prints one)
to time the RDB storage. A script, not a test.
"""

from __future__ import annotations

import sys
import time

import psutil

from common import temporary_settings
from creditops.training.run import run_training
from creditops.training.sections import TrainingSections


def timed(workers: int, trials: int, storage: str, n_jobs: int = 1) -> float:
    settings = temporary_settings(
        "creditops-bench-dist-",
        train={
            "families": ["logreg", "lightgbm"],
            "trials_per_family": trials,
            "trials": {},
            "cv_folds": 5,
            "n_jobs": n_jobs,
            "workers": workers,
            "study_storage": storage if workers > 1 else "",
        },
    )
    started = time.perf_counter()
    report = run_training(TrainingSections.from_settings(settings), show_progress=False)
    seconds = time.perf_counter() - started
    print(
        f"workers={workers} n_jobs={n_jobs}: {seconds:7.1f} s, trials "
        + ", ".join(f"{f.family} {f.trials}" for f in report.finalists)
    )
    return seconds


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    storage = sys.argv[2] if len(sys.argv) > 2 else ""
    print(f"{psutil.cpu_count()} cores; budget {trials} trials per family, 2 families")
    one = timed(1, trials, storage)
    threads = timed(1, trials, storage, n_jobs=2)
    two = timed(2, trials, storage)
    print(f"speed-up of 2 workers over 1 (one CV fold at a time each): {one / two:.2f}x")
    print(f"speed-up of 2 workers over 1 worker fitting 2 CV folds at once: {threads / two:.2f}x")


if __name__ == "__main__":
    main()
