"""The ``whisper-frames`` detector: a small network over Whisper's hidden states frame by frame.

The ``whisper-probe`` head sees each block only through its mean and standard deviation over
time; vocoder and codec artefacts that come and go between frames are averaged away there. This
head reads the frames: each chosen block is standardised with the training frames' statistics, the
blocks are concatenated, projected, passed through residual 1-D convolutions (local context,
±``kernel // 2`` frames per block) and pooled by attentive statistics pooling (a learned weight
per frame, then the weighted mean and standard deviation), then one logistic output.

Training reads the frames of each clip from a feature cache (float16, computed once through ONNX
Runtime: :class:`OnnxFrameFeatures`) and crops random spans of similar-length clips into batches;
the epoch kept is the one with the lowest dev EER. The head is stored as ``head.npz`` (numpy
arrays only, so the service reads the model folder without torch) and served inside one ONNX graph
with the encoder (:func:`services.detector.training.export.build_network`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from services.detector.model_files import ModelFileError, ModelSpec
from services.detector.training.feature_cache import FeatureCache
from services.detector.training.manifest import ManifestRow
from services.detector.training.onnx_features import open_log_mel_graph, run_on_clip
from shared.audio import Audio
from shared.metrics import equal_error_rate
from shared.offline_models import cache_dir, whisper_model_dir
from shared.whisper_encoder import WhisperEncoder

#: Bump when the exported frame-feature graph changes.
FRAME_GRAPH_VERSION = 1


@dataclass(frozen=True)
class FrameHeadConfig:
    """The head's shape (stored in ``head.npz``; the training recipe is :class:`FrameTraining`)."""

    #: Hidden states read: i = the output of encoder block i (0 = the front end).
    layers: tuple[int, ...] = (1, 2, 3)
    hidden_width: int = 128
    conv_blocks: int = 2
    kernel_frames: int = 5


@dataclass(frozen=True)
class FrameTraining:
    """How the head is trained (recorded in ``model.json``)."""

    epochs: int = 6
    batch_clips: int = 32
    #: Longest training crop: 100 frames = 2 s (Whisper's encoder gives 50 frames per second).
    max_crop_frames: int = 100
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1
    seed: int = 0


class FrameHead(nn.Module):
    """(batch, frames, len(layers)·width) hidden states -> log-odds of fake (batch,)."""

    def __init__(self, config: FrameHeadConfig, width: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = config
        inputs = len(config.layers) * width
        self.register_buffer("frame_mean", torch.zeros(inputs))
        self.register_buffer("frame_scale", torch.ones(inputs))
        self.project = nn.Linear(inputs, config.hidden_width)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.hidden_width, config.hidden_width, config.kernel_frames, padding=config.kernel_frames // 2)
            for _ in range(config.conv_blocks)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(config.hidden_width) for _ in range(config.conv_blocks))
        self.attention = nn.Conv1d(config.hidden_width, 1, 1)
        self.output = nn.Linear(2 * config.hidden_width, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = (frames - self.frame_mean) / self.frame_scale
        x = self.dropout(torch.nn.functional.gelu(self.project(x))).transpose(1, 2)  # (batch, hidden, frames)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = x + torch.nn.functional.gelu(norm(conv(x)))
        weights = torch.softmax(self.attention(x), dim=2)  # one weight per frame
        mean = (x * weights).sum(dim=2)
        std = ((x - mean[:, :, None]).square() * weights).sum(dim=2).clamp_min(1e-6).sqrt()
        return self.output(self.dropout(torch.cat([mean, std], dim=1)))[:, 0]

    # -- head.npz ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        arrays = {f"param.{name}": value.detach().numpy() for name, value in self.state_dict().items()}
        np.savez(path, **arrays, config=np.array(json.dumps(asdict(self.config))))

    @classmethod
    def load(cls, path: Path) -> FrameHead:
        with np.load(path) as data:
            try:
                fields = json.loads(str(data["config"]))
                config = FrameHeadConfig(**{**fields, "layers": tuple(int(x) for x in fields["layers"])})
                state = {
                    key.removeprefix("param."): torch.from_numpy(data[key])
                    for key in data.files
                    if key.startswith("param.")
                }
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise ModelFileError(f"{path}: not a whisper-frames head ({error})") from None
        width = state["frame_mean"].numel() // len(config.layers)
        head = cls(config, width=width)
        head.load_state_dict(state)
        return head.eval()


class FramesNetwork(nn.Module):
    """The whole ``whisper-frames`` model: log-mel (batch, 80, frames) -> P(fake) (batch,)."""

    def __init__(self, head: FrameHead, whisper_model: str = "base") -> None:
        super().__init__()
        layers = head.config.layers
        self.encoder = WhisperEncoder.from_ct2(whisper_model_dir(whisper_model), num_layers=max(layers))
        self.layers = list(layers)
        self.head = head.eval()

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(log_mel)
        return torch.sigmoid(self.head(torch.cat([hidden[index] for index in self.layers], dim=-1)))


class _StackedLayers(nn.Module):
    def __init__(self, encoder: WhisperEncoder, layers: Sequence[int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.layers = list(layers)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(log_mel)
        return torch.cat([hidden[index] for index in self.layers], dim=-1)


class OnnxFrameFeatures:
    """(frames, len(layers)·width) hidden states of a 16 kHz clip, through ONNX Runtime."""

    def __init__(self, model_name: str = "base", layers: Sequence[int] = (1, 2, 3), threads: int = 2) -> None:
        self.model_name = model_name
        self.layers = tuple(layers)
        model_bin = whisper_model_dir(model_name) / "model.bin"
        key = f"{model_name}-{self.layers}-{FRAME_GRAPH_VERSION}-{model_bin.stat().st_size}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.graph_path = cache_dir() / "features" / f"whisper-frames-{digest}.onnx"
        self.session = open_log_mel_graph(self.graph_path, self._network, "frames", threads, "frame-feature")

    @property
    def cache_id(self) -> str:
        return f"whisper-{self.model_name}-frames-{'-'.join(map(str, self.layers))}-onnx{FRAME_GRAPH_VERSION}"

    def _network(self) -> nn.Module:
        encoder = WhisperEncoder.from_ct2(whisper_model_dir(self.model_name), num_layers=max(self.layers))
        return _StackedLayers(encoder, self.layers)

    def __call__(self, audio: Audio) -> np.ndarray:
        return run_on_clip(self.session, audio)


def cached_frames(rows: Sequence[ManifestRow], extractor: OnnxFrameFeatures, description: str) -> list[np.ndarray]:
    """Each row's frames, computed once and kept in the feature cache as float16 (half the disk
    and memory; the head standardises them in float32)."""
    return FeatureCache(extractor.cache_id).arrays(rows, extractor, description, dtype=np.float16)


def _frame_statistics(clips: Sequence[np.ndarray], limit_frames: int = 400_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation over (a seeded sample of) the training frames."""
    generator = np.random.default_rng(0)
    per_clip = max(1, limit_frames // max(1, len(clips)))
    sample = np.concatenate(
        [clip[generator.choice(len(clip), min(per_clip, len(clip)), replace=False)] for clip in clips]
    ).astype(np.float64)
    return sample.mean(axis=0).astype(np.float32), np.maximum(sample.std(axis=0), 1e-3).astype(np.float32)


def _batches(lengths: np.ndarray, recipe: FrameTraining, generator: np.random.Generator) -> list[np.ndarray]:
    """Clip indices in batches of similar length (sorted with a random tie order, chunked, shuffled)."""
    order = np.lexsort((generator.random(len(lengths)), lengths))
    chunks = [order[start : start + recipe.batch_clips] for start in range(0, len(order), recipe.batch_clips)]
    generator.shuffle(chunks)
    return chunks


def _crop_batch(
    clips: Sequence[np.ndarray], indices: np.ndarray, recipe: FrameTraining, generator: np.random.Generator
) -> torch.Tensor:
    span = min(min(len(clips[index]) for index in indices), recipe.max_crop_frames)
    crops = []
    for index in indices:
        start = generator.integers(0, len(clips[index]) - span + 1)
        crops.append(clips[index][start : start + span])
    return torch.from_numpy(np.stack(crops).astype(np.float32))


@torch.inference_mode()
def score_frames(head: FrameHead, clips: Sequence[np.ndarray]) -> np.ndarray:
    """P(fake) of each whole clip (one at a time: clips differ in length)."""
    head.eval()
    return np.array([torch.sigmoid(head(torch.from_numpy(clip.astype(np.float32))[None]))[0].item() for clip in clips])


@dataclass(frozen=True)
class FramesTrainResult:
    head: FrameHead
    dev_eer: float
    threshold: float
    history: list[dict]


def fit_frame_head(
    train: Sequence[np.ndarray],
    y_train: np.ndarray,
    dev: Sequence[np.ndarray],
    y_dev: np.ndarray,
    config: FrameHeadConfig = FrameHeadConfig(),
    recipe: FrameTraining = FrameTraining(),
    progress: bool = True,
) -> FramesTrainResult:
    """Train a :class:`FrameHead` on cached frames; keep the epoch with the lowest dev EER.

    Each class weighs half of the loss whatever its share of the clips (``balanced``, like the
    probe's logistic regression).
    """
    torch.manual_seed(recipe.seed)
    generator = np.random.default_rng(recipe.seed)
    width = train[0].shape[1] // len(config.layers)
    head = FrameHead(config, width=width, dropout=recipe.dropout)
    mean, scale = _frame_statistics(train)
    head.frame_mean.copy_(torch.from_numpy(mean))
    head.frame_scale.copy_(torch.from_numpy(scale))
    fake_share = float(np.mean(y_train))
    class_weight = torch.tensor([0.5 / (1.0 - fake_share), 0.5 / fake_share], dtype=torch.float32)
    optimiser = torch.optim.AdamW(head.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    lengths = np.array([len(clip) for clip in train])
    steps = recipe.epochs * math.ceil(len(train) / recipe.batch_clips)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=recipe.learning_rate, total_steps=steps)
    labels = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
    best: tuple[float, float, dict] | None = None
    history: list[dict] = []
    for epoch in range(1, recipe.epochs + 1):
        head.train()
        losses = []
        batches = _batches(lengths, recipe, generator)
        for indices in tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not progress):
            logits = head(_crop_batch(train, indices, recipe, generator))
            target = labels[indices]
            weight = class_weight[target.long()]
            losses_per_clip = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
            loss = (losses_per_clip * weight).sum() / weight.sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        dev_eer, threshold = equal_error_rate(y_dev, score_frames(head, dev))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "dev_eer": dev_eer})
        if progress:
            print(f"epoch {epoch}: train loss {np.mean(losses):.4f}, dev EER {100 * dev_eer:.2f} %", flush=True)
        if best is None or dev_eer < best[0] - 1e-9:
            best = (dev_eer, threshold, {key: value.clone() for key, value in head.state_dict().items()})
    assert best is not None
    head.load_state_dict(best[2])
    return FramesTrainResult(head.eval(), best[0], best[1], history)


def train_whisper_frames(
    train_rows: Sequence[ManifestRow],
    dev_rows: Sequence[ManifestRow],
    out_dir: Path,
    summary: dict,
    name: str,
    whisper_model: str = "base",
    config: FrameHeadConfig = FrameHeadConfig(),
    recipe: FrameTraining = FrameTraining(),
) -> tuple[ModelSpec, FramesTrainResult]:
    """Features through the cache, :func:`fit_frame_head`, then the model folder (``head.npz``,
    ``model.json``); the caller exports and checks its graph."""
    extractor = OnnxFrameFeatures(whisper_model, config.layers)
    train = cached_frames(train_rows, extractor, "whisper frames (train)")
    dev = cached_frames(dev_rows, extractor, "whisper frames (dev)")
    y_train = np.array([row.is_fake for row in train_rows], dtype=int)
    y_dev = np.array([row.is_fake for row in dev_rows], dtype=int)
    result = fit_frame_head(train, y_train, dev, y_dev, config, recipe)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.head.save(out_dir / "head.npz")
    spec = ModelSpec(
        name=name,
        kind="whisper-frames",
        threshold=result.threshold,
        created=dt.date.today().isoformat(),
        whisper_model=whisper_model,
        layers=list(config.layers),
        training=summary
        | {
            "head": asdict(config),
            "recipe": asdict(recipe),
            "selected": {
                "epoch": min(result.history, key=lambda entry: entry["dev_eer"])["epoch"],
                "dev_eer": result.dev_eer,
            },
            "history": result.history,
        },
    )
    spec.write(out_dir)
    return spec, result
