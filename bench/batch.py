"""Batch-scoring benchmark: 1,000,000 applicants through `creditops score`'s engine.

Registers an XGBoost, a LightGBM and a random-forest model (each fitted on the
whole dataset) in a temporary MLflow store, writes 1,000,000 rows (the
dataset's applicants drawn with replacement, 0.1 % of them broken) as Parquet
and CSV, and scores them with `batch.score_file`: without reasons, with the
default reasons (declined rows, decision-path contributions), with reasons for
every row, and with the service's exact tree SHAP for the declined rows.
Prints rows/s and the process's peak resident memory (target: >= 200,000
rows/s, < 2 GiB). A script, not a test: `python bench/batch.py [ROWS] [--family F ...]`
(the registered families are always the three; --family picks the runs).
"""

from __future__ import annotations

import argparse
import re
import resource
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from common import temporary_settings
from creditops import features, registry
from creditops.batch.run import score_file
from creditops.data import load_dataset


class PeakMemory:
    """Samples this process's resident memory every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument(
        "--family", action="append", choices=("xgboost", "lightgbm", "random_forest")
    )
    args = parser.parse_args()
    rows = args.rows
    settings = temporary_settings("creditops-bench-batch-")
    root = Path(settings.logging.runs_log).parent
    dataset = load_dataset(settings.data)
    client = registry.connect(settings.mlflow)
    versions = {}
    for family, params in (
        ("xgboost", {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05}),
        ("lightgbm", {"n_estimators": 300, "num_leaves": 15, "learning_rate": 0.05}),
        ("random_forest", {"n_estimators": 200, "max_depth": 10}),
    ):
        pipeline = features.build_pipeline(family, params, seed=0).fit(
            dataset.features, dataset.target
        )
        ref = registry.register_fitted(
            client,
            settings.mlflow.registered_model,
            pipeline,
            family=family,
            threshold=0.4,
            data_hash=dataset.data_hash,
            run_name=f"bench-{family}",
        )
        versions[family] = ref.version
    registry.set_alias(client, settings.mlflow.registered_model, "champion", versions["xgboost"])

    rng = np.random.default_rng(0)
    frame = dataset.features.iloc[rng.integers(0, len(dataset.features), rows)].reset_index(
        drop=True
    )
    broken = rng.choice(rows, rows // 1000, replace=False)
    frame.loc[broken, "Age"] = 3.0
    parquet, csv = root / "book.parquet", root / "book.csv"
    frame.to_parquet(parquet, index=False)
    frame.to_csv(csv, index=False)
    del frame
    print(f"{rows:,} rows, {len(broken):,} broken; machine: {psutil.cpu_count()} cores")
    # (family, input, reasons label, [batch] overrides): top_k 0 = no reasons;
    # "declined/path" is the default: reason codes by decision-path contributions,
    # the service's method
    runs: list[tuple[str, Path, str, dict[str, object]]] = []
    for source in (parquet, csv):
        runs += [
            ("xgboost", source, "none", {"reasons_top_k": 0}),
            ("xgboost", source, "declined/path", {}),
            ("xgboost", source, "all/path", {"reasons_for": "all"}),
        ]
    runs += [
        ("lightgbm", parquet, "none", {"reasons_top_k": 0}),
        ("lightgbm", parquet, "declined/path", {}),
        # the same with the former default chunk (same run: the ratio is this machine's)
        ("lightgbm", parquet, "declined/path, 200k chunks", {"chunk_rows": 200_000}),
        ("lightgbm", parquet, "all/path", {"reasons_for": "all"}),
        ("random_forest", parquet, "none", {"reasons_top_k": 0}),
        ("random_forest", parquet, "declined/path", {}),
    ]
    runs = [run for run in runs if not args.family or run[0] in args.family]
    print(
        f"{'model':<14} {'input':<8} {'reasons':<28} {'seconds':>8} {'rows/s':>10} "
        f"{'declined':>9} {'peak RSS':>9}"
    )
    speed: dict[tuple[str, str, str], float] = {}
    for family, source, label, update in runs:
        run_config = settings.batch.model_copy(update=update)
        # "declined/path, 200k chunks" -> declined-path-200k-chunks
        name = re.sub(r"[^0-9a-z]+", "-", label)
        output = root / f"scores-{family}-{name}{source.suffix}"
        with PeakMemory() as memory:
            started = time.perf_counter()
            summary = score_file(
                run_config,
                settings.mlflow,
                source,
                output,
                model_version=versions[family],
                show_progress=False,
            )
            seconds = time.perf_counter() - started
        assert summary.scored + summary.rejected == rows
        assert summary.rejected == len(broken)
        speed[family, source.suffix, label] = rows / seconds
        print(
            f"{family:<14} {source.suffix[1:]:<8} {label:<28} {seconds:>8.2f} "
            f"{rows / seconds:>10,.0f} {summary.declined / summary.scored:>9.1%} "
            f"{memory.peak / 2**30:>8.2f}G",
            flush=True,
        )
    for family in ("xgboost", "lightgbm"):
        if (family, ".parquet", "none") not in speed:
            continue
        none, declined = (speed[family, ".parquet", label] for label in ("none", "declined/path"))
        print(
            f"{family}, declined rows' reason codes cost {none / declined - 1:.0%} of the throughput"
        )
        former = speed.get((family, ".parquet", "declined/path, 200k chunks"))
        if former:
            print(
                f"{family}, declined/path: chunks of {settings.batch.chunk_rows:,} rows "
                f"{declined:,.0f} rows/s against 200,000 rows {former:,.0f} "
                f"({declined / former:.2f}x)"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"whole benchmark process peak RSS (ru_maxrss, includes writing the inputs): {peak:.2f} GiB"
    )


if __name__ == "__main__":
    main()
