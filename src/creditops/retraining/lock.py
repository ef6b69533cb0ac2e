"""One retraining at a time: the ``retraining`` lock in the inference store.

Two ``creditops check --retrain`` runs whose triggers fire together (two
cron hosts, a manual run during a scheduled one) must not both retrain: the
second would gate a challenger trained on the same rows against a champion
the first may be replacing. The lock is a row in the inference store's
database (:mod:`creditops.serving.locks`), so it holds across processes and
hosts sharing ``[serve] store_url``; the run that does not get it records
that a retraining is in progress, since when and by whom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from creditops.config import CheckConfig
from creditops.retraining.policy import TriggerDecision, cooldown_remaining
from creditops.retraining.records import read_last_retrain

log = logging.getLogger(__name__)

RETRAIN_LOCK = "retraining"
IN_PROGRESS = "in_progress"


def retrain_exclusively(
    decision: TriggerDecision,
    retrain: Callable[[], Exception | None],
    *,
    store_url: str,
    config: CheckConfig,
    now: datetime,
) -> Exception | None:
    """Run ``retrain`` under the retraining lock, or record why it did not run.

    Args:
        decision: the check's decision (action ``retrain``); its action turns
            to ``in_progress`` when another run holds the lock, or to
            ``cooldown`` when a retraining finished while this check judged.
        retrain: the retraining; returns its failure (``None``: retrained).
        store_url: the inference store whose database holds the lock.
        config: ``[check]``: the cooldown, the decisions folder, ``lock_stale_minutes``.
        now: the decision's time.

    Returns:
        What ``retrain`` returned (``None`` when it did not run).

    Raises:
        StoreError: the store's database cannot hold the lock.
    """
    from creditops.serving.locks import store_lock

    stale = config.lock_stale_minutes * 60.0
    with store_lock(store_url, RETRAIN_LOCK, stale_after_seconds=stale) as holder:
        if holder is not None:
            decision.action = IN_PROGRESS
            decision.messages.append(
                f"retraining not started: a retraining is in progress {holder.describe()}"
            )
            log.warning(
                "check: a retraining is in progress %s; not starting another", holder.describe()
            )
            return None
        # another check may have retrained (and released the lock) while this one judged
        left = cooldown_remaining(
            read_last_retrain(config.decisions_dir), now, config.cooldown_minutes
        )
        if left > 0:
            decision.action = "cooldown"
            decision.cooldown_minutes_left = left
            decision.messages.append(
                f"retraining held back: another check retrained meanwhile; {left:.1f} min of "
                f"the {config.cooldown_minutes:g} min cooldown left"
            )
            return None
        return retrain()
