"""An XGBoost booster built from trees written as XGBoost's JSON model (``save_model`` format).

Two modules write trees for XGBoost's predictor: :mod:`creditops.inference.lightgbm_trees`
(a LightGBM booster's trees, scored by XGBoost) and
:mod:`creditops.inference.path_trees` (vector-leaf trees whose leaves hold
decision-path contributions). Both wrap their trees in the same model document.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xgboost


def booster_document(
    trees: list[dict[str, Any]], *, features: int, targets: int, base_score: str, objective: str
) -> dict[str, Any]:
    """The JSON model of a gbtree booster of ``trees``, one tree per round, nothing learnt from data.

    Args:
        trees: the trees in XGBoost's JSON form, their ``id`` numbered from 0.
        features: the input's width.
        targets: the outputs (1, or the leaf vectors' size).
        base_score: the model's base score as XGBoost writes it (a number, or a
            bracketed list for several targets).
        objective: the objective's name (its output transform).
    """
    return {
        "learner": {
            "attributes": {},
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": {
                "model": {
                    "gbtree_model_param": {
                        "num_parallel_tree": "1",
                        "num_trees": str(len(trees)),
                    },
                    "iteration_indptr": list(range(len(trees) + 1)),
                    "tree_info": [0] * len(trees),
                    "trees": trees,
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": base_score,
                "boost_from_average": "0",
                "num_class": "0",
                "num_feature": str(features),
                "num_target": str(targets),
            },
            "objective": {"name": objective, "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [2, 1, 0],
    }


def load_booster(document: dict[str, Any]) -> xgboost.Booster:
    """The booster of a :func:`booster_document`, predicting on one thread (callers slice)."""
    import xgboost

    booster = xgboost.Booster(model_file=bytearray(json.dumps(document).encode()))
    booster.set_param({"nthread": 1})
    return booster
