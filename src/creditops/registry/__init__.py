"""The MLflow model registry, through aliases: ``challenger``, ``champion``, ``previous``.

``client`` wraps the MLflow client (versions, aliases, the artifacts a version
was trained on); ``promotion`` is the gate that moves ``champion``;
``holdout`` checks that the gate's rows are new to both models. The names
below are the registry's public face: ``from creditops import registry`` and
``registry.promote(...)``.
"""

from creditops.registry.client import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    ModelRef,
    connect,
    download_model_files,
    find_alias,
    get_version,
    list_versions,
    load_pipeline,
    load_training_frames,
    pipeline_from_files,
    register_fitted,
    register_version,
    require_servable,
    resolve_alias,
    set_alias,
)
from creditops.registry.promotion import (
    PromotionDecision,
    decide_promotion,
    promote,
    rollback,
    score_auc,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "ModelRef",
    "PromotionDecision",
    "connect",
    "decide_promotion",
    "download_model_files",
    "find_alias",
    "get_version",
    "list_versions",
    "load_pipeline",
    "load_training_frames",
    "pipeline_from_files",
    "promote",
    "register_fitted",
    "register_version",
    "require_servable",
    "resolve_alias",
    "rollback",
    "score_auc",
    "set_alias",
]
