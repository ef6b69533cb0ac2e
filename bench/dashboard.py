"""Dashboard benchmark: a monitoring table of 36 months x 2 versions from 1,000,000 logged rows.

Builds an inference log in memory (applicants resampled from the dataset, PDs
from a logistic regression fitted on it, outcomes drawn from the PDs and
posted at their default month or when the 12-month window closes, only for
approved loans), computes its monitoring table with the very month providers
``creditops monitor --by month`` runs (``monitoring.by_month.monthly_rows``),
writes it to a SQLite monitoring table, reads it back, and renders the page.

Prints the time of each step, the table's size, the page's size and the
render time (target: < 5 s).

Usage: ``.venv/bin/python bench/dashboard.py [--rows 1000000] [--months 36]``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from creditops import features, schema
from creditops.config import load_config
from creditops.dashboard.page import write_dashboard
from creditops.data import load_dataset, split_dataset
from creditops.monitoring.by_month import Reference, monthly_rows
from creditops.monitoring.table import read_table, write_rows

START = pd.Timestamp("2022-01-01", tz=UTC)


def synthetic_log(rows: int, months: int, seed: int) -> tuple[pd.DataFrame, Reference]:
    """``rows`` logged applicants over ``months``, half scored by each of two versions."""
    settings = load_config(None)
    split = split_dataset(load_dataset(settings.data), settings.data.test_size, seed)
    train = split.train
    x = schema.coerce_features(train)
    y = (train[schema.TARGET] == schema.POSITIVE_LABEL).to_numpy(dtype=int)
    model = features.build_pipeline("logreg", {}, seed)
    model.fit(x, y)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(train), rows)
    frame = x.iloc[picked].reset_index(drop=True)
    pd_base = model.predict_proba(frame)[:, 1]
    month = rng.integers(0, months, rows)
    version = rng.integers(1, 3, rows)
    # version 2 is a slightly different model: its PDs are the first's, perturbed
    pd_served = np.where(
        version == 2, np.clip(pd_base * rng.uniform(0.9, 1.1, rows), 0, 1), pd_base
    )
    threshold = 0.35
    approved = pd_served < threshold
    applied = START + pd.to_timedelta(month * 30.4 + rng.uniform(0, 28, rows), unit="D")
    bad = rng.random(rows) < pd_served
    default_month = rng.integers(1, 13, rows)
    observed = applied + pd.to_timedelta(np.where(bad, default_month, 12) * 30.4, unit="D")
    as_of = START + pd.DateOffset(months=months)
    posted = approved & (observed <= as_of)
    frame = frame.assign(
        request_id=[f"{i:032x}" for i in range(rows)],
        created_at=applied,
        application_at=applied,
        model_version=version,
        probability=pd_served,
        decision=np.where(approved, "approve", "decline"),
        threshold=threshold,
        explored=False,
        outcome=pd.Series(np.where(bad, "bad", "good"), dtype=object).where(posted, None),
        observed_at=pd.Series(observed).where(posted),
    )
    test = schema.coerce_features(split.test)
    labels = (split.test[schema.TARGET] == schema.POSITIVE_LABEL).to_numpy(dtype=int)
    reference = Reference(train, model.predict_proba(test)[:, 1], labels, threshold)
    return frame, reference


def screenshot(page: Path, png: Path) -> None:
    """A full-page PNG of ``page`` from headless Chromium (scripts/chromium.sh finds it)."""
    chromium = subprocess.run(
        ["bash", "scripts/chromium.sh"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=20000",
            "--window-size=1400,3400",
            f"--screenshot={png.resolve()}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        check=True,
        timeout=180,
    )
    print(f"screenshot: {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--page", type=Path, help="also keep the page here")
    parser.add_argument("--screenshot", type=Path, help="and a PNG of it (headless Chromium)")
    args = parser.parse_args()
    started = time.perf_counter()
    log_frame, reference = synthetic_log(args.rows, args.months, args.seed)
    print(
        f"log: {len(log_frame):,} rows, {args.months} months, 2 versions "
        f"({time.perf_counter() - started:.1f} s to build)"
    )
    config = load_config(None).monitor
    as_of = (START + pd.DateOffset(months=args.months)).to_pydatetime()
    started = time.perf_counter()
    rows, _ = monthly_rows(
        log_frame, reference, config, datetime.fromtimestamp(as_of.timestamp(), UTC)
    )
    print(f"monitor by month: {len(rows):,} table rows in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'inferences.db'}"
        started = time.perf_counter()
        write_rows(url, rows)
        table = read_table(url)
        print(f"table write + read: {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        page = args.page or Path(folder) / "dashboard.html"
        summary = write_dashboard(table, page, source="sqlite:///state/inferences.db")
        seconds = time.perf_counter() - started
        if args.screenshot:
            screenshot(page, args.screenshot)
    print(
        f"dashboard: render {seconds:.2f} s (target < 5 s), page {summary.bytes / 1e6:.2f} MB, "
        f"{summary.panels_drawn} panels drawn, {summary.panels_waiting} waiting"
    )


if __name__ == "__main__":
    main()
