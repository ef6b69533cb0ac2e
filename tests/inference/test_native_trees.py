"""LightGBM trees compiled to machine code: exact, cached only in a private folder, optional."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from creditops import features
from creditops.data import Dataset
from creditops.inference import native_trees, scorer
from creditops.inference.raw import raw_matrix_from_frame
from creditops.registry import ModelRef

pytest.importorskip("lleaves")  # Python 3.14+: no llvmlite lleaves can use


def _booster(seed: int = 0) -> tuple[lightgbm.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 6))
    x[rng.random(x.shape) < 0.05] = np.nan
    y = (x[:, 0] + np.nan_to_num(x[:, 1]) * x[:, 2] + rng.normal(size=2000) > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1, random_state=seed)
    return model.fit(x, y).booster_, x


def test_compiled_trees_equal_lightgbm_and_are_cached_once(tmp_path: Path) -> None:
    booster, x = _booster()
    folder = tmp_path / "cache"
    predict = native_trees.compile_booster(booster, folder)
    np.testing.assert_allclose(predict(x), booster.predict(x), rtol=0, atol=1e-12)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    (cached,) = folder.iterdir()  # one object file, no partial left behind
    assert cached.suffix == ".o"
    written = cached.stat().st_mtime_ns
    again = native_trees.compile_booster(booster, folder)
    np.testing.assert_array_equal(again(x), predict(x))
    assert [p.name for p in folder.iterdir()] == [cached.name]
    assert cached.stat().st_mtime_ns == written  # read, not compiled again


def test_small_batches_keep_the_interpreter_lock_and_give_the_same_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lleaves

    called: list[int] = []  # the rows of each call of lleaves' own predict
    own = lleaves.Model.predict

    def counted(self: lleaves.Model, data: np.ndarray, n_jobs: int | None = None) -> np.ndarray:
        called.append(len(data))
        return own(self, data, n_jobs=n_jobs)

    monkeypatch.setattr(lleaves.Model, "predict", counted)
    booster, x = _booster(seed=3)
    predict = native_trees.compile_booster(booster, tmp_path / "cache")
    whole = predict(x)  # 2,000 rows: lleaves' own predict (the lock released)
    assert len(x) > native_trees.HELD_ROWS
    assert called == [len(x)]
    for rows in (0, 1, 2, 7, native_trees.HELD_ROWS):
        part = x[:rows]
        np.testing.assert_array_equal(predict(part), whole[:rows])
        np.testing.assert_allclose(predict(part), booster.predict(part), rtol=0, atol=1e-12)
    strided = x[::3][:5]  # not contiguous: copied before the machine code reads it
    np.testing.assert_array_equal(predict(strided), whole[::3][:5])
    with pytest.raises(ValueError, match=r"Data must be of dimension \(N, 6\)"):
        predict(x[:2, :5])
    assert called == [len(x)]  # every small batch went through the held entry point


def test_a_folder_others_can_write_to_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    booster, x = _booster()
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger=native_trees.__name__):
        predict = native_trees.compile_booster(booster, folder)
    np.testing.assert_allclose(predict(x), booster.predict(x), rtol=0, atol=1e-12)
    assert list(folder.iterdir()) == []
    assert any(
        "is not private" in r.getMessage() and "mode 777" in r.getMessage() for r in caplog.records
    )


def test_without_lleaves_the_scorer_uses_xgboost_on_the_same_trees(
    credit_dataset: Dataset, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = features.build_pipeline(
        "lightgbm", {"n_estimators": 40, "num_leaves": 7}, seed=0
    ).fit(credit_dataset.features, credit_dataset.target)
    monkeypatch.setitem(sys.modules, "lleaves", None)  # import lleaves: ImportError
    with pytest.raises(native_trees.NativeUnavailableError, match="lleaves is not installed"):
        native_trees.compile_booster(pipeline.named_steps["model"].booster_)
    ref = ModelRef("m", 1, "run", "source", "lightgbm", 0.4, "h", "r")
    with caplog.at_level(logging.INFO):
        model = scorer.prepare_model(ref, pipeline)
    assert model.fast_path
    assert model.model is not None and model.model.tolerance == 1e-6  # XGBoost's float32
    assert any("not compiled to machine code" in r.getMessage() for r in caplog.records)
    raw = raw_matrix_from_frame(credit_dataset.features)
    np.testing.assert_allclose(
        model.score(raw, reasons=False).probability,
        pipeline.predict_proba(credit_dataset.features)[:, 1],
        rtol=0,
        atol=1e-6,
    )
