"""A version without a usable ``threshold`` tag is listed, but never served or batch-scored.

Real registry (SQLite in a temporary folder): versions registered with a
threshold, whose tag is then removed or set out of range, as another tool
could leave them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditops import features, registry, schema
from creditops.batch.run import score_file
from creditops.config import Settings
from creditops.data import load_dataset
from creditops.errors import RegistryError
from creditops.tracking import TrackingClient
from support import make_settings


@dataclass(frozen=True)
class TagStore:
    settings: Settings
    client: TrackingClient
    untagged: int  # no threshold tag
    out_of_range: int  # threshold tag "1.5"


@pytest.fixture(scope="module")
def tag_store(tmp_path_factory: pytest.TempPathFactory) -> TagStore:
    root = tmp_path_factory.mktemp("threshold-tags")
    settings = make_settings(root, serve={"poll_seconds": 0.5})
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    dataset = load_dataset(settings.data)
    versions = []
    for c in (0.5, 1.0):
        pipeline = features.build_pipeline("logreg", {"C": c}, seed=0)
        ref = registry.register_fitted(
            client,
            name,
            pipeline.fit(dataset.features, dataset.target),
            family="logreg",
            threshold=0.4,
            data_hash=dataset.data_hash,
            run_name=f"threshold-{c}",
        )
        versions.append(ref.version)
    client.delete_model_version_tag(name, str(versions[0]), "threshold")
    client.set_model_version_tag(name, str(versions[1]), "threshold", "1.5")
    return TagStore(settings, client, versions[0], versions[1])


def test_the_version_is_listed_but_not_servable(tag_store: TagStore) -> None:
    name = tag_store.settings.mlflow.registered_model
    listed = {ref.version for ref in registry.list_versions(tag_store.client, name)}
    assert listed == {tag_store.untagged, tag_store.out_of_range}
    untagged = registry.get_version(tag_store.client, name, tag_store.untagged)
    with pytest.raises(RegistryError, match="has no usable threshold tag"):
        registry.require_servable(untagged)
    out_of_range = registry.get_version(tag_store.client, name, tag_store.out_of_range)
    with pytest.raises(RegistryError, match=r"threshold tag 1\.5 is not in \(0, 1\)"):
        registry.require_servable(out_of_range)


@pytest.mark.parametrize("which", ["untagged", "out_of_range"])
def test_batch_scoring_refuses_the_version(tag_store: TagStore, tmp_path: Path, which: str) -> None:
    rows = load_dataset(tag_store.settings.data).frame.iloc[:50]
    source = tmp_path / "applicants.csv"
    rows.loc[:, list(schema.FEATURES)].to_csv(source, index=False)
    output = tmp_path / "scores.csv"
    with pytest.raises(RegistryError, match="threshold tag") as caught:
        score_file(
            tag_store.settings.batch,
            tag_store.settings.mlflow,
            source,
            output,
            model_version=getattr(tag_store, which),
            show_progress=False,
        )
    assert "not served" in str(caught.value)
    assert not output.exists()


@pytest.mark.slow
def test_ready_says_why_the_champion_is_not_served(
    tag_store: TagStore, start_server: Any, tmp_path: Path
) -> None:
    name = tag_store.settings.mlflow.registered_model
    registry.set_alias(tag_store.client, name, registry.CHAMPION, tag_store.untagged)
    try:
        settings = make_settings(
            tmp_path,
            mlflow={
                "tracking_uri": tag_store.settings.mlflow.tracking_uri,
                "artifact_location": tag_store.settings.mlflow.artifact_location,
            },
            serve={"poll_seconds": 0.5},
        )
        server = start_server(settings)
        server.wait_ready(need_model=False)
        detail = ""
        for _ in range(200):
            response = httpx.get(f"{server.url}/ready", timeout=5)
            assert response.status_code == 503, response.text
            detail = str(response.json()["detail"])
            if not detail.startswith("starting"):
                break
            time.sleep(0.1)
        assert detail.startswith("cannot load the champion: "), detail
        assert f"v{tag_store.untagged} has no usable threshold tag" in detail, detail
    finally:
        tag_store.client.delete_registered_model_alias(name, registry.CHAMPION)
