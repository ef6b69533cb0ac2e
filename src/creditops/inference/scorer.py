"""Scoring a registered model fast, with per-prediction reasons.

The registered sklearn ``Pipeline`` stays the source of truth. At load time
:func:`prepare_model` compiles it (:mod:`creditops.inference.compiled`): the
fitted preprocessing becomes numpy operations on the raw float matrix
(:mod:`creditops.inference.raw`) and the classifier is called through its own
fast entry point. Every compiled model is checked against
``pipeline.predict_proba`` on probe rows drawn from the contract before it is
used; a step the compiler does not know, or a disagreement above 1e-9, falls
back to the pipeline itself.

Reasons are per-prediction contributions (:mod:`creditops.inference.contributions`)
summed per contract field (or derived ratio), in the model's own units.

A registered model with a calibrator (:class:`creditops.calibration.CalibratedModel`)
is compiled the same way: its pipeline is compiled and checked on the raw
scores, and the calibration map is applied after, on either path. The reasons
stay on the uncalibrated contributions: the map is monotone, so their order
holds. A plain pipeline (a version logged before calibration) is served as
before, its raw score as the probability.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from creditops import features
from creditops.calibration import Calibrate, CalibratedModel, method_of, unwrap
from creditops.inference.compiled import (
    CompiledModel,
    Op,
    UnsupportedStepError,
    compile_model,
    compile_preprocessor,
)
from creditops.inference.raw import Matrix, frame_from_raw, probe_rows
from creditops.inference.reasons import REASON_METHOD
from creditops.registry import ModelRef

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

AGREEMENT_TOLERANCE = 1e-9
# Probe rows the contributions run on at load: enough to show the path works and warm it
# (contributions cost ~0.3 ms a row, three quarters of the check on all the probe rows).
CONTRIBUTION_PROBE_ROWS = 16
PROBE_ROWS = 256


@dataclass
class Scores:
    """Probabilities of bad and, when asked, contributions per source column."""

    probability: Matrix
    contributions: Matrix | None = None
    # the classifier's input (the compiled transform's output), when the fast path scored
    transformed: Matrix | None = None


@dataclass
class LoadedModel:
    """A registered version ready to score: the pipeline, its compiled form and its calibration."""

    ref: ModelRef
    pipeline: Pipeline
    transform: Op | None
    model: CompiledModel | None
    sources: tuple[str, ...]
    aggregate: Matrix | None
    fast_path: bool
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    # the calibration map applied to the raw score; None: a plain pipeline, served raw
    calibrate: Calibrate | None = None
    calibration_method: str = "none"
    # what the version's artifact holds (the pipeline, or it with its calibrator): what
    # another process needs to prepare the same model (the shadow scorer's)
    registered: object = None

    @property
    def calibrated(self) -> bool:
        """Whether the served probability is a calibrated PD (False: an uncalibrated version)."""
        return self.calibrate is not None

    @property
    def contribution_unit(self) -> str:
        """The unit of the contributions ("log-odds", "probability"), or "none"."""
        return self.model.unit if self.model is not None else "none"

    def score(self, raw: Matrix, *, reasons: bool) -> Scores:
        """Probability of bad for each raw row, and per-source contributions if ``reasons``."""
        x = None
        if self.fast_path:
            assert self.model is not None
            x = self._transformed(raw)
            probability = self._calibrated(np.asarray(self.model.predict(x), dtype=np.float64))
        else:
            probability = self.predict_pipeline(frame_from_raw(raw))
        if not reasons:
            return Scores(probability, transformed=x)
        return Scores(
            probability,
            self._contributions(raw if x is None else None, x, REASON_METHOD),
            transformed=x,
        )

    def contributions(
        self, raw: Matrix, method: str = REASON_METHOD, *, transformed: Matrix | None = None
    ) -> Matrix | None:
        """Per-source contributions of raw rows by ``method`` ("path" or "shap"); None if none.

        Reasons use ``REASON_METHOD`` everywhere; "shap" (exact tree SHAP) is for comparisons.
        ``transformed``: the same rows' classifier input, when the caller has it
        (``Scores.transformed``): the transform is not run twice.
        """
        return self._contributions(raw, transformed, method)

    def _transformed(self, raw: Matrix) -> Matrix:
        """The classifier's input: the compiled transform, else the pipeline's own steps."""
        if self.fast_path:
            assert self.transform is not None
            return self.transform(raw)
        steps = self.pipeline.named_steps
        return steps["preprocess"].transform(  # type: ignore[no-any-return]
            steps["derive"].transform(frame_from_raw(raw))
        )

    def _contributions(self, raw: Matrix | None, x: Matrix | None, method: str) -> Matrix | None:
        if self.model is None or self.aggregate is None:
            return None
        if x is None:
            assert raw is not None
            x = self._transformed(raw)
        out = self.model.contributions(x, method)
        return None if out is None else np.asarray(out) @ self.aggregate

    def predict_pipeline(self, frame: pd.DataFrame) -> Matrix:
        """The registered model's own probability of bad, calibrated if it is (the source of truth)."""
        return self._calibrated(self.raw_pipeline(frame))

    def raw_pipeline(self, frame: pd.DataFrame) -> Matrix:
        """The pipeline's own uncalibrated probability of bad."""
        return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=np.float64)

    def _calibrated(self, raw: Matrix) -> Matrix:
        return raw if self.calibrate is None else self.calibrate(raw)


def prepare_model(
    ref: ModelRef, registered: Pipeline | CalibratedModel, *, started: float | None = None
) -> LoadedModel:
    """Compile the registered model's pipeline and check the compiled form against it on probe rows.

    ``registered`` is what the version's artifact holds: a
    :class:`~creditops.calibration.CalibratedModel`, or a plain pipeline.
    """
    started = time.perf_counter() if started is None else started
    pipeline, calibrate = unwrap(registered)
    transform: Op | None = None
    model: CompiledModel | None = None
    try:
        transform = compile_preprocessor(pipeline)
    except UnsupportedStepError as exc:
        log.warning("model %s v%s: preprocessing not compiled (%s)", ref.name, ref.version, exc)
    try:
        model = compile_model(pipeline.named_steps["model"])
    except UnsupportedStepError as exc:
        log.warning("model %s v%s: classifier not compiled (%s)", ref.name, ref.version, exc)
    sources: tuple[str, ...] = ()
    aggregate: Matrix | None = None
    try:
        sources, aggregate = _source_aggregate(pipeline)
    except (KeyError, AttributeError) as exc:
        log.warning("model %s v%s: no reasons (%s)", ref.name, ref.version, exc)
        model = None
    loaded = LoadedModel(ref, pipeline, transform, model, sources, aggregate, fast_path=False)
    loaded.calibrate = calibrate
    loaded.calibration_method = method_of(registered)
    loaded.registered = registered
    if transform is not None and model is not None:
        loaded.fast_path = _probe_agrees(loaded)
    loaded.load_seconds = time.perf_counter() - started
    log.info(
        "model %s v%s (%s, threshold %.4f) ready in %.2f s: %s path, reasons in %s, calibration %s",
        ref.name,
        ref.version,
        ref.family,
        ref.threshold,
        loaded.load_seconds,
        "compiled" if loaded.fast_path else "pipeline",
        loaded.contribution_unit,
        loaded.calibration_method,
    )
    return loaded


def _source_aggregate(pipeline: Pipeline) -> tuple[tuple[str, ...], Matrix]:
    """The source of each transformed column, and the 0/1 matrix that sums columns per source."""
    groups = features.feature_groups(pipeline)
    sources = tuple(dict.fromkeys(groups))
    aggregate = np.zeros((len(groups), len(sources)))
    aggregate[np.arange(len(groups)), [sources.index(g) for g in groups]] = 1.0
    return sources, aggregate


def _probe_agrees(loaded: LoadedModel) -> bool:
    """Whether the compiled path gives the pipeline's probabilities on probe rows.

    Compared on the raw scores, before calibration: both paths apply the same
    map after, and a steep step of an isotonic map would magnify a 1e-12 gap.
    Also runs the contributions once on a few rows: it shows the path works and warms it.
    """
    ref = loaded.ref
    probe = probe_rows(PROBE_ROWS)
    expected = loaded.raw_pipeline(frame_from_raw(probe))
    loaded.fast_path = True
    assert loaded.model is not None
    got = np.asarray(loaded.model.predict(loaded._transformed(probe)), dtype=np.float64)
    loaded.score(probe[:CONTRIBUTION_PROBE_ROWS], reasons=True)
    gap = float(np.max(np.abs(got - expected)))
    if gap > max(AGREEMENT_TOLERANCE, loaded.model.tolerance):
        log.error(
            "model %s v%s: compiled path differs from the pipeline by %.3g on probe rows; "
            "serving the pipeline itself",
            ref.name,
            ref.version,
            gap,
        )
        return False
    return True
