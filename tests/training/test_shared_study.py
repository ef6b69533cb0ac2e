"""Distributed search: several processes share one Optuna study per family in PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from creditops import registry
from creditops.config import Settings
from creditops.data import frame_hash, load_dataset, split_dataset
from creditops.training.shared_study import (
    SharedStudy,
    close_storages,
    create_studies,
    open_storage,
)
from support import make_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEARCH = {"families": ["logreg", "lightgbm"], "trials_per_family": 4, "cv_folds": 3, "n_jobs": 1}


def complete_numbers(storage_url: str, study: str, family: str) -> list[int]:
    import optuna

    try:
        storage = open_storage(storage_url)
        loaded = optuna.load_study(study_name=f"{study}.{family}", storage=storage)
        states = (optuna.trial.TrialState.COMPLETE,)
        return sorted(t.number for t in loaded.get_trials(states=states))
    finally:
        close_storages()


def test_two_local_workers_share_the_budget_and_register_one_best_model(
    tmp_path: Path, postgres_database: str
) -> None:
    from creditops.training.run import run_training
    from creditops.training.sections import TrainingSections

    settings = make_settings(
        tmp_path, train={**SEARCH, "workers": 2, "study_storage": postgres_database}
    )
    sections = TrainingSections.from_settings(settings)
    report = run_training(sections, show_progress=False, study="two-workers")
    for family in SEARCH["families"]:
        # every trial number of the budget completed once: none lost, none extra
        assert complete_numbers(postgres_database, "two-workers", family) == [0, 1, 2, 3]
    client = registry.connect(settings.mlflow)
    runs = client.search_runs(
        [client.get_experiment_by_name(settings.mlflow.experiment).experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{report.run_id}' and tags.`creditops.stage` = 'trial'",
    )
    logged = sorted((r.data.tags["family"], int(r.data.tags["trial"])) for r in runs)
    assert logged == [(f, n) for f in sorted(SEARCH["families"]) for n in range(4)]
    versions = registry.list_versions(client, settings.mlflow.registered_model)
    assert sorted(v.family for v in versions) == sorted(SEARCH["families"])
    challenger = registry.resolve_alias(client, settings.mlflow.registered_model, "challenger")
    best = max(report.finalists, key=lambda f: f.cv_auc)
    assert challenger.version == best.version
    assert all(f.trials == 4 for f in report.finalists)


def test_joined_processes_split_the_budget_exactly(tmp_path: Path, postgres_database: str) -> None:
    settings: Settings = make_settings(
        tmp_path, train={**SEARCH, "trials_per_family": 6, "study_storage": postgres_database}
    )
    dataset = load_dataset(settings.data)
    split = split_dataset(dataset, settings.data.test_size, settings.data.seed)
    client = registry.connect(settings.mlflow)
    parent = client.create_run(
        client.get_experiment_by_name(settings.mlflow.experiment).experiment_id
    )
    shared = SharedStudy("joined", postgres_database)
    budgets = create_studies(settings.train, shared, frame_hash(split.train), parent.info.run_id)
    close_storages()
    assert budgets == {"logreg": 6, "lightgbm": 6}
    config = tmp_path / "creditops.toml"
    config.write_text(
        "\n".join(
            [
                "[mlflow]",
                f'tracking_uri = "{settings.mlflow.tracking_uri}"',
                f'artifact_location = "{settings.mlflow.artifact_location}"',
                "[logging]",
                f'runs_log = "{tmp_path / "runs.log"}"',
                "[train]",
                'families = ["logreg", "lightgbm"]',
                "cv_folds = 3",
                "n_jobs = 1",
                f'study_storage = "{postgres_database}"',
            ]
        )
        + "\n"
    )
    command = [str(Path(sys.executable).parent / "creditops"), "--config", str(config), "train"]
    workers = [
        subprocess.Popen(
            [*command, "--join", "joined", "--worker-index", str(i)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    ran: dict[str, int] = {"logreg": 0, "lightgbm": 0}
    for stdout, _ in outputs:
        for family, count in re.findall(r"(\w+) (\d+) trial\(s\)", stdout):
            ran[family] += int(count)
    assert ran == budgets
    for family in budgets:
        assert complete_numbers(postgres_database, "joined", family) == list(range(6))


def test_join_refuses_a_study_that_does_not_exist(tmp_path: Path, postgres_database: str) -> None:
    config = tmp_path / "creditops.toml"
    config.write_text(
        f'[train]\nstudy_storage = "{postgres_database}"\n'
        f'[logging]\nruns_log = "{tmp_path / "runs.log"}"\n'
        f'[mlflow]\ntracking_uri = "sqlite:///{tmp_path / "m.db"}"\n'
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "creditops"),
            "--config",
            str(config),
            "train",
            "--join",
            "nope",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: no study 'nope' in postgresql+psycopg://")
