"""Model kinds register their builders (udfs.models.kinds): the models room its backends, udfs.clustering its
``kmeans_centroids`` when imported; a folder picks a registered builder by kind and never names a module."""
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from udfs.clustering.model import KIND, Clustering
from udfs.models import kinds, loading

ROOT = Path(__file__).resolve().parents[1]
CENTROIDS = np.array([[1.0, 0.0], [0.0, 1.0]])


def centroids_folder(folder: Path, kind: str = KIND) -> Path:
    """A ``textspark/`` folder of the clustering kind: two centroids in two dimensions."""
    (folder / "weights").mkdir(parents=True)
    np.save(folder / "weights" / "centroids.npy", CENTROIDS)
    (folder / "textspark.json").write_text(json.dumps({"kind": kind, "params": {"distance": "euclidean"}}))
    return folder


def test_every_kind_has_a_builder_once_its_room_is_imported():
    assert kinds.registered() == tuple(sorted(kinds.KINDS))
    assert kinds.builder(KIND).__module__ == "udfs.clustering.model"


def test_a_worker_that_unpickles_a_clustering_builds_its_kind(tmp_path):
    """A fresh Python process (a Spark worker) gets the clustering kind's builder from unpickling what a
    clustering's UDF holds: unpickling imports udfs.clustering, which registers it."""
    folder = centroids_folder(tmp_path / "textspark")
    (tmp_path / "udf.pkl").write_bytes(pickle.dumps(Clustering(centroids=CENTROIDS, distance="euclidean")))
    script = textwrap.dedent(f"""
        import pickle, sys
        from pathlib import Path
        from udfs.models import kinds, loading

        print(("udfs.clustering" in sys.modules) == ("{KIND}" in kinds.registered()))
        clustering = pickle.loads(Path({str(tmp_path / "udf.pkl")!r}).read_bytes())
        print("{KIND}" in kinds.registered())
        built = loading.build(Path({str(folder)!r}), device="cpu", precision="fp32")
        print(type(built).__name__, built.assign([[0.9, 0.1], [0.2, 0.7]])[0].tolist())
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout) == (0, "True\nTrue\nClustering [0, 1]\n"), done.stderr[-2000:]


def test_a_known_kind_whose_room_is_not_imported_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delitem(kinds._builders, KIND)
    with pytest.raises(LookupError) as err:
        loading.build(centroids_folder(tmp_path / "textspark"), device="cpu", precision="fp32")
    assert str(err.value) == (f"kind {KIND!r} has no builder in this process: the room that implements it registers "
                              "it when imported (registered: bergamot, embedding_head, fasttext_lid, hf_classifier, "
                              "hf_encoder, hf_seq2seq, lingua_hybrid_lid, lingua_lid)")


@pytest.mark.parametrize("kind", ["os:system", "udfs.clustering.model:load_clustering", None])
def test_a_folder_cannot_name_a_module(tmp_path, kind):
    with pytest.raises(ValueError) as err:
        loading.build(centroids_folder(tmp_path / "textspark", kind=kind), device="cpu", precision="fp32")
    assert str(err.value) == (f"textspark.json kind: got {kind!r}; allowed: bergamot, embedding_head, fasttext_lid, "
                              "hf_classifier, hf_encoder, hf_seq2seq, kmeans_centroids, lingua_hybrid_lid, lingua_lid")


def test_only_a_known_kind_can_be_registered():
    with pytest.raises(ValueError) as err:
        kinds.register("pickle_blob", "pickle:loads")
    assert str(err.value) == ("kind: got 'pickle_blob'; allowed: hf_encoder, embedding_head, hf_classifier, "
                              "kmeans_centroids, fasttext_lid, lingua_lid, lingua_hybrid_lid, bergamot, hf_seq2seq")
