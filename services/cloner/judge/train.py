"""Training of the speaker judge, its ONNX export, and its verification report on unseen speakers.

``vcfad judge train`` runs all of it and writes the model folder (``models/judge`` by default):
the ONNX graph, ``judge.json`` (front end, network, recipe, data and the measured EERs) and the
model card's numbers. The recipe is :class:`JudgeRecipe`; the data are catalogue sources.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.cloner.judge.data import (
    Utterance,
    halve_single_recordings,
    merge_short,
    source_utterances,
    split_speakers,
)
from services.cloner.judge.front_end import FrontEnd
from services.cloner.judge.network import AdditiveAngularMargin, NetworkConfig, SpeakerNetwork
from services.cloner.judge.score import GRAPH_FILE, SETTINGS_FILE, SpeakerJudge
from shared.files import write_atomic
from shared.metrics import equal_error_rate
from shared.onnx_export import ONNX_TOLERANCE, export_log_mel_network, max_difference_to_torch
from shared.sources import SnapshotStore, load_sources, snapshot_roots

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class JudgeRecipe:
    """Everything that decides the judge: data sources, split, network and optimisation.

    ``train_sources`` lend their speakers to training, except a seeded ``held_out_fraction`` of
    them (the dev report: same corpora, unseen speakers); ``test_sources`` are never trained on
    (unseen speakers *and* recording conditions).
    """

    catalogue: str = "configs/detector/sources.toml"
    snapshots: tuple[str, ...] = ("../.mirror",)
    cache_dir: str = "data/judge"
    train_sources: tuple[str, ...] = (
        "speech-accent-archive-andrewwang247",
        "ravdess-speech-zenvilleerasmus",
        "speech-commands-v2-testset-pico",
    )
    test_sources: tuple[str, ...] = ("hyke-telephone-digits-india", "emodb-voice-emotion-analysis")
    held_out_fraction: float = 0.12
    #: One-word clips are joined per speaker into utterances at least this long.
    min_utterance_s: float = 3.0
    crop_frames: int = 200
    crops_per_speaker: int = 8
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    margin: float = 0.2
    scale: float = 30.0
    seed: int = 0
    threads: int = 2
    network: NetworkConfig = field(default_factory=NetworkConfig)
    front_end: FrontEnd = field(default_factory=FrontEnd)


def load_utterances(recipe: JudgeRecipe, names: Sequence[str]) -> list[Utterance]:
    """The real utterances of the named catalogue sources (short clips joined per speaker)."""
    sources = {source.name: source for source in load_sources(REPO_ROOT / recipe.catalogue)}
    unknown = sorted(set(names) - set(sources))
    if unknown:
        raise ValueError(f"not in {recipe.catalogue}: {', '.join(unknown)}")
    store = SnapshotStore(roots=snapshot_roots(recipe.snapshots, REPO_ROOT), cache_dir=REPO_ROOT / "data/sources")
    utterances: list[Utterance] = []
    for name in names:
        found = source_utterances(sources[name], store, recipe.front_end, REPO_ROOT / recipe.cache_dir)
        utterances += merge_short(found, recipe.min_utterance_s)
    return utterances


def _crop(frames: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    if len(frames) < length:
        frames = np.tile(frames, (length // len(frames) + 1, 1))
    start = int(rng.integers(0, len(frames) - length + 1))
    crop = frames[start : start + length]
    return crop - crop.mean(axis=0, keepdims=True)


def _batches(utterances: Sequence[Utterance], labels: np.ndarray, recipe: JudgeRecipe, rng: np.random.Generator):
    """One epoch: ``crops_per_speaker`` random crops of every speaker, shuffled into batches."""
    by_speaker: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_speaker.setdefault(int(label), []).append(index)
    picks = []
    for label, indices in by_speaker.items():
        weights = np.array([len(utterances[i].frames) for i in indices], dtype=np.float64)
        chosen = rng.choice(indices, size=recipe.crops_per_speaker, p=weights / weights.sum())
        picks += [(int(i), label) for i in chosen]
    order = rng.permutation(len(picks))
    for start in range(0, len(order), recipe.batch_size):
        batch = [picks[i] for i in order[start : start + recipe.batch_size]]
        crops = np.stack([_crop(utterances[i].frames, recipe.crop_frames, rng) for i, _ in batch])
        # SpecAugment-style: one band of up to 8 mel channels masked per crop.
        for crop in crops:
            width = int(rng.integers(0, 9))
            low = int(rng.integers(0, crop.shape[1] - width + 1))
            crop[:, low : low + width] = 0.0
        yield torch.from_numpy(crops.transpose(0, 2, 1).copy()), torch.tensor([label for _, label in batch])


def train_network(recipe: JudgeRecipe, utterances: Sequence[Utterance]) -> SpeakerNetwork:
    """Train the speaker network on ``utterances`` (every speaker a class) with AAM-softmax."""
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    speakers = sorted({u.speaker for u in utterances})
    index = {speaker: i for i, speaker in enumerate(speakers)}
    labels = np.array([index[u.speaker] for u in utterances])
    network = SpeakerNetwork(recipe.network)
    loss_fn = AdditiveAngularMargin(recipe.network.embedding_dim, len(speakers), recipe.margin, recipe.scale)
    parameters = list(network.parameters()) + list(loss_fn.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    steps_per_epoch = -(-len(speakers) * recipe.crops_per_speaker // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.learning_rate, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.15
    )
    rng = np.random.default_rng(recipe.seed)
    network.train()
    for epoch in range(recipe.epochs):
        started, losses = time.monotonic(), []
        for crops, batch_labels in _batches(utterances, labels, recipe, rng):
            loss = loss_fn(network(crops), batch_labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        log.info(
            "judge epoch %d/%d: loss %.3f (%.0f s)",
            epoch + 1,
            recipe.epochs,
            np.mean(losses),
            time.monotonic() - started,
        )
    return network.eval()


@dataclass(frozen=True)
class VerificationReport:
    """Equal error rate over every pair of utterances of a set of unseen speakers."""

    name: str
    speakers: int
    utterances: int
    target_trials: int
    nontarget_trials: int
    eer: float

    @classmethod
    def measure(cls, name: str, utterances: Sequence[Utterance], embed: Callable[[np.ndarray], np.ndarray]):
        """Score all pairs of ``utterances`` with cosine similarity of ``embed(frames)``."""
        utterances = halve_single_recordings(utterances)
        vectors = np.stack([embed(u.frames) for u in utterances])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        first, second = np.triu_indices(len(utterances), k=1)
        scores = np.einsum("ij,ij->i", vectors[first], vectors[second])
        speakers = np.array([u.speaker for u in utterances])
        same = (speakers[first] == speakers[second]).astype(int)
        eer, _ = equal_error_rate(same, scores)
        return cls(name, len(set(speakers)), len(utterances), int(same.sum()), int((1 - same).sum()), float(eer))


def torch_embedder(network: SpeakerNetwork) -> Callable[[np.ndarray], np.ndarray]:
    def embed(frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(frames.T[None].copy()))[0].numpy()

    return embed


def export_judge(network: SpeakerNetwork, folder: Path) -> float:
    """Write the ONNX graph into ``folder``; returns its largest difference to torch (checked)."""
    worst = 0.0

    def export_and_check(partial: Path) -> None:
        nonlocal worst
        export_log_mel_network(network, partial, "embedding", n_mels=network.config.n_mels)
        worst = max_difference_to_torch(network, partial, n_mels=network.config.n_mels)
        if worst > ONNX_TOLERANCE:
            raise RuntimeError(f"the judge's ONNX graph differs from torch by {worst:.2e} > {ONNX_TOLERANCE}")

    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / GRAPH_FILE, export_and_check)
    return worst


def build_judge(recipe: JudgeRecipe, output: Path) -> dict:
    """Train, export and measure a judge; writes ``output`` and returns what ``judge.json`` holds."""
    started = time.monotonic()
    pool = load_utterances(recipe, recipe.train_sources)
    train, held_out = split_speakers(pool, recipe.held_out_fraction, recipe.seed)
    tests = {name: load_utterances(recipe, [name]) for name in recipe.test_sources}
    trained_speakers = {u.speaker for u in train}
    for name, utterances in itertools.chain([("held-out", held_out)], tests.items()):
        overlap = trained_speakers & {u.speaker for u in utterances}
        if overlap:
            raise RuntimeError(f"{name}: {len(overlap)} speakers are also in training")
    log.info("judge: %d training speakers, %d utterances", len(trained_speakers), len(train))
    network = train_network(recipe, train)
    training_s = time.monotonic() - started
    parity = export_judge(network, output)
    settings: dict[str, Any] = {
        "name": output.name,
        "created": time.strftime("%Y-%m-%d"),
        "front_end": asdict(recipe.front_end),
        "network": asdict(recipe.network),
        "recipe": {k: v for k, v in asdict(recipe).items() if k not in ("front_end", "network")},
        "training": {
            "speakers": len(trained_speakers),
            "utterances": len(train),
            "hours": round(sum(u.duration_s for u in train) / 3600, 2),
            "seconds_on_this_machine": round(training_s),
            "onnx_max_difference": parity,
        },
    }
    (output / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    # The reports use the exported graph: the numbers are those of what ships.
    from_onnx = SpeakerJudge(output, threads=recipe.threads).embed_frames
    reports = [VerificationReport.measure("held-out speakers of the training corpora (dev)", held_out, from_onnx)]
    reports += [VerificationReport.measure(f"{name} (test: unseen corpus)", tests[name], from_onnx) for name in tests]
    settings["verification"] = [asdict(report) for report in reports]
    (output / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    (output / "MODEL_CARD.md").write_text(model_card(settings, recipe))
    return settings


def model_card(settings: dict, recipe: JudgeRecipe) -> str:
    """The model card of a judge folder, from what :func:`build_judge` measured."""
    sources = load_sources(REPO_ROOT / recipe.catalogue)
    used = [s for s in sources if s.name in (*recipe.train_sources, *recipe.test_sources)]
    training = settings["training"]
    lines = [
        f"# Speaker judge `{settings['name']}`",
        "",
        "A speaker-verification network (x-vector TDNN with attentive statistics pooling, AAM-softmax;",
        f"{sum(p.numel() for p in SpeakerNetwork(recipe.network).parameters()):,} weights) over 64 log-mel bands of",
        "60–3,800 Hz at 8 kHz. It is the independent judge of `vcfad eval-clone`: no part of the cloner",
        "imports it (import-linter contract in pyproject.toml), so the cloner cannot optimise against it.",
        "It shares nothing with GE2E (architecture, features, loss, training data).",
        "",
        "Rebuild (needs the snapshots of the sources below under `../.mirror` or `VCFAD_SNAPSHOTS`;",
        "docs/cloning.md, 'The speaker judge'):",
        "",
        "```",
        f".venv/bin/vcfad judge train --output models/{settings['name']}",
        "```",
        "",
        f"Trained {settings['created']} on {training['speakers']:,} speakers ({training['utterances']:,} utterances, "
        f"{training['hours']} h) in {training['seconds_on_this_machine']:,} s on a 2-core VM shared with other jobs;",
        f"ONNX graph checked against torch (largest difference {training['onnx_max_difference']:.1e}).",
        "",
        "## Verification on speakers it never saw",
        "",
        "Every pair of utterances scored by cosine; a speaker with one recording gives its two halves",
        "(same session, so easier than two sessions). EER = equal error rate.",
        "",
        "| set | speakers | utterances | target trials | non-target trials | EER |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for report in settings["verification"]:
        lines.append(
            f"| {report['name']} | {report['speakers']} | {report['utterances']} | {report['target_trials']:,} | "
            f"{report['nontarget_trials']:,} | {100 * report['eer']:.1f} % |"
        )
    lines += ["", "## Data (public repositories at pinned commits; `configs/detector/sources.toml`)", ""]
    lines += ["| source | repository @ commit | licence | role |", "|---|---|---|---|"]
    for source in used:
        role = "training (a held-out share of speakers: dev)" if source.name in recipe.train_sources else "test only"
        lines.append(f"| {source.name} | {source.repository} @ {source.commit[:12]} | {source.licence} | {role} |")
    lines += [
        "",
        "None of the repositories reserved for independent evaluation is read (the catalogue reader",
        "refuses them). LibriSpeech in `../shared/data` is not used in training.",
        "",
    ]
    return "\n".join(lines)
