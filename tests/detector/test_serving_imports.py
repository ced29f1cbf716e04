"""The detector service scores a clip without torch, scikit-learn or the training code.

A fresh interpreter creates the app through its factory, loads the shipped model in the app's
start-up, answers ``POST /detect`` for a generated clip, and lists what it imported. The graph is
assembled into the cache first, here (that one step needs torch; serving a cached graph does not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.detector.inference import Detector
from services.detector.model_files import ModelFileError, ModelSpec, default_model_dir
from services.detector.training.graphs import probe_onnx_path

REPO_ROOT = Path(__file__).resolve().parents[2]

SERVE_AND_LIST_MODULES = """
import io, json, sys
import numpy as np, soundfile as sf
from fastapi.testclient import TestClient
from services.detector.app import create_app
from services.detector.config import Settings

rng = np.random.default_rng(0)
t = np.arange(48_000) / 16_000
clip = 0.2 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(3 * t))) + 0.01 * rng.standard_normal(t.size)
wav = io.BytesIO()
sf.write(wav, clip.astype(np.float32), 16_000, format="WAV")
with TestClient(create_app(Settings(model_dir=MODEL_DIR, threads=1))) as client:
    response = client.post("/detect", params={"timeline": True}, files={"file": ("clip.wav", wav.getvalue())})
    assert response.status_code == 200, response.text
print(json.dumps({"detection": response.json(), "modules": sorted(sys.modules)}))
"""

FORBIDDEN_PREFIXES = (
    "torch",
    "sklearn",
    "skl2onnx",
    "services.detector.training",
    "services.detector.dataset",
    "services.detector.evaluation",
    "services.cloner",
    "shared.whisper_encoder",
)
#: The seed baseline's librosa features (``librosa.effects.harmonic``) import scikit-learn
#: through librosa itself; the ``default`` models import it nowhere.
LIBROSA_NEEDS = {"seed-baseline": ("sklearn",)}


@pytest.mark.parametrize("model", ["default", "default-int8", "seed-baseline"])
def test_serving_imports_no_torch_nor_training_code(model: str) -> None:
    model_dir = default_model_dir(model)
    if ModelSpec.read(model_dir).kind == "whisper-probe":
        probe_onnx_path(model_dir)  # into the cache, so the service finds it there
    script = SERVE_AND_LIST_MODULES.replace("MODEL_DIR", repr(str(model_dir)))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 <= report["detection"]["score"] <= 1.0 and report["detection"]["timeline"]
    assert "services.detector.inference" in report["modules"]  # the scoring path did run
    imported = [
        name
        for name in report["modules"]
        if any(name == prefix or name.startswith(prefix + ".") for prefix in FORBIDDEN_PREFIXES)
        and not any(name == allowed or name.startswith(allowed + ".") for allowed in LIBROSA_NEEDS.get(model, ()))
    ]
    assert imported == []


@pytest.mark.slow
def test_a_missing_graph_is_assembled_in_a_child_process(tmp_path: Path) -> None:
    # An empty cache: the service's first load assembles the graph through `vcfad build-detector-graph`
    # in a child; the serving process still imports no torch or training code.
    script = SERVE_AND_LIST_MODULES.replace("MODEL_DIR", repr(str(default_model_dir("default"))))
    env = {**os.environ, "VCFAD_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    modules = json.loads(result.stdout.strip().splitlines()[-1])["modules"]
    assert not [name for name in modules if name.split(".")[0] == "torch" or "detector.training" in name]
    assert list((tmp_path / "cache" / "detector").glob("whisper-probe-*.onnx"))


def test_an_unbuildable_graph_is_a_clear_model_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((default_model_dir("default") / "model.json").read_text())
    (broken / "head.npz").write_bytes(b"not a head")
    with pytest.raises(ModelFileError, match="could not assemble its ONNX graph"):
        Detector(broken)
