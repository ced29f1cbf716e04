"""Small neural vocoders for copy-synthesis fakes: real speech → log-mel → vocoded speech.

Copy-synthesis through a neural vocoder (Wang & Yamagishi, ICASSP 2023) makes spoofed training
data whose only difference from the real clip is the vocoder's artefacts: same speaker, same words.
The shipped ones in ``models/vocoder/`` are trained here (:func:`train_vocoder`) on the shared real
speech (``librispeech/train-clean-100``; never on ``external-dev``) and measured on held-out clips
(:func:`evaluate_vocoder`)::

    vocoder = NeuralVocoder.load()               # default shipped model
    fake = vocoder.copy_synthesize(real_audio)   # 16 kHz, same length as the input

Pretrained HiFi-GANs are :mod:`services.detector.dataset.pretrained_vocoder`; a vocoder by name or
folder is :func:`services.detector.dataset.vocoders.load_copy_synthesizer`; the commands are
``vcfad data vocoder train|evaluate|copy`` (docs/dataset.md). torch is imported inside functions,
so importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jiwer
import numpy as np

from services.detector.dataset.copy_synthesis import CopySynthesizer, copy_through, spectral_distances
from shared.audio import MODEL_SAMPLE_RATE_HZ, Audio, LoadPolicy, load_audio
from shared.files import write_atomic
from shared.offline_models import whisper_model_dir

if TYPE_CHECKING:
    # Torch: the networks load on use, so importing this module stays cheap.
    import torch

    from services.detector.dataset.neural_vocoder_nets import VocoderConfig

REPO_ROOT = Path(__file__).resolve().parents[3]
#: Where the shipped vocoders live, one folder each (``config.json``, ``generator.pt``, ``MODEL_CARD.md``).
MODELS_DIR = REPO_ROOT / "models" / "vocoder"
DEFAULT_VOCODER = "vocos-s"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.pt"
LOG_FILE = "training_log.json"


class VocoderNotFoundError(FileNotFoundError):
    """No vocoder (``config.json`` + ``generator.pt``) at the given path."""


def available_vocoders(models_dir: Path = MODELS_DIR) -> list[Path]:
    """The shipped vocoder folders (each holds ``config.json`` and ``generator.pt``), sorted by name."""
    if not models_dir.is_dir():
        return []
    return sorted(
        path for path in models_dir.iterdir() if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()
    )


class NeuralVocoder:
    """A trained mel → waveform generator and its feature extractor, ready for copy-synthesis.

    Build it with :meth:`load`; one instance per process is enough (it holds no per-call state).
    """

    def __init__(self, config: VocoderConfig, generator: torch.nn.Module) -> None:
        # Torch: the networks load on use, so importing this module stays cheap.
        from services.detector.dataset.neural_vocoder_nets import LogMel

        self.config = config
        self.name: str = config.name
        self.generator = generator.eval()
        self.log_mel = LogMel(config).eval()
        self.content_id = ""

    @classmethod
    def load(cls, path: Path | None = None, *, threads: int = 1) -> NeuralVocoder:
        """Load a vocoder folder; ``None`` loads the default shipped model.

        Parameters
        ----------
        path
            A folder holding ``config.json`` and ``generator.pt`` (as written by ``train``).
        threads
            torch intra-op threads for this process (``torch.set_num_threads``).

        Raises
        ------
        VocoderNotFoundError
            The folder (or, for ``None``, any shipped model) is missing.
        """
        # Torch: the networks load on use, so importing this module stays cheap.
        import torch

        from services.detector.dataset.neural_vocoder_nets import VocoderConfig, build_generator

        if path is None:
            shipped = available_vocoders()
            if not shipped:
                raise VocoderNotFoundError(f"no trained vocoder in {MODELS_DIR}; run `... neural_vocoder train` first")
            by_name = {p.name: p for p in shipped}
            path = by_name.get(DEFAULT_VOCODER, shipped[0])
        path = Path(path)
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise VocoderNotFoundError(f"{path}: not a vocoder folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        torch.set_num_threads(max(1, threads))
        config = VocoderConfig.from_dict(json.loads((path / CONFIG_FILE).read_text()))
        generator = build_generator(config)
        state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        generator.load_state_dict({key: value.float() for key, value in state.items()})
        vocoder = cls(config, generator)
        vocoder.content_id = ";".join(
            f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in sorted(path.glob("*.pt"))
        )
        return vocoder

    def save(self, path: Path) -> Path:
        """Write ``config.json`` and ``generator.pt`` (float32 state dict) into folder ``path``."""
        save_vocoder(self.config, self.generator, path)
        return Path(path)

    def copy_synthesize(self, audio: Audio) -> Audio:
        """Vocode ``audio`` from its own log-mel: 16 kHz out, exactly as many seconds as in.

        Raises
        ------
        SilentAudioError
            ``audio`` has no samples.
        """
        # Torch: the networks load on use, so importing this module stays cheap.
        import torch

        from services.detector.dataset.neural_vocoder_nets import vocode

        def waveform(samples: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return vocode(self.generator, self.log_mel, torch.from_numpy(samples)[None], self.config)[0].numpy()

        return copy_through(audio, self.config.sample_rate_hz, self.config.hop_length, waveform)

    def __repr__(self) -> str:
        return f"NeuralVocoder(name={self.name!r}, arch={self.config.arch!r})"


def save_vocoder(config: VocoderConfig, generator: torch.nn.Module, path: Path) -> None:
    """Write ``config.json`` + ``generator.pt`` atomically-enough (weights first, then config)."""
    import torch  # loaded on use, so importing this module stays cheap

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().float() for key, value in generator.state_dict().items()}
    write_atomic(path / WEIGHTS_FILE, lambda temp: torch.save(state, temp))
    (path / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")


# -- data ---------------------------------------------------------------------------------------
#: Training speech is trimmed and loudness-normalised like everything else in vcfad.
TRAIN_POLICY = LoadPolicy(sample_rate_hz=MODEL_SAMPLE_RATE_HZ, trim_silence=True, normalize_loudness=True)


def read_manifest(manifest: Path) -> list[dict[str, str]]:
    lines = manifest.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line.strip()]


def training_files(shared_data_dir: Path) -> list[Path]:
    """The real training clips: ``librispeech/train-clean-100`` from its manifest (never external-dev)."""
    root = shared_data_dir / "librispeech"
    rows = read_manifest(root / "manifest.tsv")
    files = [root / row["path"] for row in rows if row["path"].startswith("train-clean-100/")]
    if not files:
        raise FileNotFoundError(f"no train-clean-100 rows in {root / 'manifest.tsv'}")
    return files


def heldout_files(shared_data_dir: Path, per_speaker: int = 2) -> list[Path]:
    """Held-out evaluation clips: the first ``per_speaker`` of each ``test-other`` speaker (unseen speakers)."""
    root = shared_data_dir / "librispeech"
    by_speaker: dict[str, list[Path]] = {}
    for row in read_manifest(root / "manifest.tsv"):
        if row["path"].startswith("test-other/"):
            by_speaker.setdefault(row["speaker"], []).append(root / row["path"])
    return [path for speaker in sorted(by_speaker) for path in sorted(by_speaker[speaker])[:per_speaker]]


# -- training -----------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    minutes: float = 25.0
    max_steps: int | None = None
    batch_size: int = 8
    segment_s: float = 0.5
    learning_rate: float = 5e-4
    #: Random gain (dB) applied to each segment, so levels away from −23 dBFS are vocoded too.
    gain_db: tuple[float, float] = (-8.0, 4.0)
    checkpoint_every_s: float = 300.0
    log_every: int = 25
    seed: int = 0
    threads: int = 1


class VocoderTrainer:
    """Adam(W) on mel L1 + multi-resolution STFT loss (no discriminator); one step per batch."""

    def __init__(self, config: VocoderConfig, learning_rate: float = 5e-4, seed: int = 0) -> None:
        # Torch: the networks load on use, so importing this module stays cheap.
        import torch

        from services.detector.dataset.neural_vocoder_nets import LogMel, build_generator

        torch.manual_seed(seed)
        self.config = config
        self.generator = build_generator(config)
        self.log_mel = LogMel(config)
        self.base_lr = learning_rate
        self.optimizer = torch.optim.AdamW(self.generator.parameters(), lr=learning_rate, betas=(0.8, 0.99))

    def losses(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        # Torch: the networks load on use, so importing this module stays cheap.
        from services.detector.dataset.neural_vocoder_nets import vocode, vocoder_loss

        fake = vocode(self.generator, self.log_mel, batch, self.config)
        return vocoder_loss(fake, batch, self.log_mel)

    def evaluate(self, batch: torch.Tensor) -> dict[str, float]:
        # Torch: loaded on use, so importing this module stays cheap.
        import torch

        self.generator.eval()
        with torch.no_grad():
            result = {key: float(value) for key, value in self.losses(batch).items()}
        self.generator.train()
        return result

    def step(self, batch: torch.Tensor, lr_scale: float = 1.0) -> dict[str, float]:
        # Torch: loaded on use, so importing this module stays cheap.
        import torch

        self.generator.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * lr_scale
        losses = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), max_norm=10.0)
        self.optimizer.step()
        return {key: float(value.detach()) for key, value in losses.items()}

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())


def sample_batch(
    clips: Sequence[np.ndarray],
    rng: np.random.Generator,
    batch_size: int,
    segment: int,
    gain_db: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """``batch_size`` random ``segment``-sample crops of random clips, each with a random gain."""
    batch = np.zeros((batch_size, segment), dtype=np.float32)
    for row in range(batch_size):
        clip = clips[rng.integers(len(clips))]
        if len(clip) > segment:
            start = int(rng.integers(len(clip) - segment))
            crop = clip[start : start + segment]
        else:
            crop = clip
        gain = 10.0 ** (rng.uniform(*gain_db) / 20.0)
        peak = float(np.max(np.abs(crop))) or 1.0
        batch[row, : len(crop)] = crop * min(gain, 0.95 / peak)
    return batch


def train_vocoder(
    config: VocoderConfig,
    clips: Sequence[np.ndarray],
    out_dir: Path,
    settings: TrainSettings,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train on ``clips`` (16 kHz float32) for ``settings.minutes`` wall time; save into ``out_dir``.

    The learning rate follows a cosine over the time budget. Checkpoints (weights + config +
    ``training_log.json``) are written every ``checkpoint_every_s`` and at the end.
    """
    import torch  # loaded on use, so importing this module stays cheap

    torch.set_num_threads(max(1, settings.threads))
    started = time.monotonic()
    budget_s = settings.minutes * 60.0
    rng = np.random.default_rng(settings.seed)
    trainer = VocoderTrainer(config, settings.learning_rate, settings.seed)
    hop = config.hop_length
    segment = max(hop, round(settings.segment_s * config.sample_rate_hz) // hop * hop)
    validation = torch.from_numpy(sample_batch(clips, np.random.default_rng(12345), 16, segment))
    history: list[dict[str, float]] = []
    running: dict[str, float] = {}
    step = 0
    last_checkpoint = time.monotonic()
    log(
        f"{config.name}: {config.arch}, {trainer.parameter_count():,} parameters, {len(clips)} clips, "
        f"segment {segment} samples x batch {settings.batch_size}, budget {settings.minutes:g} min"
    )

    def record() -> dict[str, Any]:
        elapsed = time.monotonic() - started
        summary = {
            "name": config.name,
            "arch": config.arch,
            "parameters": trainer.parameter_count(),
            "steps": step,
            "train_minutes": round(elapsed / 60.0, 2),
            "clips": len(clips),
            "settings": {k: v for k, v in vars(settings).items()},
            "final_train_losses": history[-1] if history else {},
            "final_validation_losses": trainer.evaluate(validation),
            "history": history,
        }
        save_vocoder(config, trainer.generator, out_dir)
        (Path(out_dir) / LOG_FILE).write_text(json.dumps(summary, indent=1) + "\n")
        return summary

    while True:
        elapsed = time.monotonic() - started
        if elapsed >= budget_s or (settings.max_steps is not None and step >= settings.max_steps):
            break
        lr_scale = max(0.05, 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / budget_s))))
        batch = torch.from_numpy(sample_batch(clips, rng, settings.batch_size, segment, settings.gain_db))
        losses = trainer.step(batch, lr_scale)
        step += 1
        for key, value in losses.items():
            running[key] = running.get(key, 0.0) + value
        if step % settings.log_every == 0:
            mean = {key: round(value / settings.log_every, 4) for key, value in running.items()}
            running = {}
            entry = {"step": step, "minutes": round(elapsed / 60.0, 2), "lr": settings.learning_rate * lr_scale, **mean}
            history.append(entry)
            log(json.dumps(entry))
        if time.monotonic() - last_checkpoint > settings.checkpoint_every_s:
            record()
            last_checkpoint = time.monotonic()
    summary = record()
    log(f"done: {step} steps in {summary['train_minutes']} min; validation {summary['final_validation_losses']}")
    return summary


def load_training_clips(shared_data_dir: Path) -> list[np.ndarray]:
    return [load_audio(path, TRAIN_POLICY).samples for path in training_files(shared_data_dir)]


# -- evaluation ---------------------------------------------------------------------------------
class GriffinLimCopy:
    """A reference point for evaluation only: the same log-mel inverted by Griffin-Lim (no network)."""

    def __init__(self, config: VocoderConfig, n_iter: int = 32) -> None:
        # Torch: the networks load on use, so importing this module stays cheap.
        from services.detector.dataset.neural_vocoder_nets import LogMel

        self.config = config
        self.name = "griffin-lim"
        self.content_id = f"griffin-lim:{n_iter}"
        self.log_mel = LogMel(config)
        self.n_iter = n_iter

    def copy_synthesize(self, audio: Audio) -> Audio:
        # librosa and torch: loaded on use, so importing this module stays cheap.
        import librosa
        import torch

        config = self.config
        speech = audio.resample(config.sample_rate_hz)
        with torch.no_grad():
            mel = torch.exp(self.log_mel(torch.from_numpy(speech.samples)[None]))[0].numpy()
        wave = librosa.feature.inverse.mel_to_audio(
            mel,
            sr=config.sample_rate_hz,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            win_length=config.win_length,
            power=1.0,
            n_iter=self.n_iter,
            fmin=config.fmin_hz,
            fmax=config.fmax_hz,
            length=speech.num_samples,
        )
        return Audio(np.clip(wave, -1.0, 1.0).astype(np.float32), config.sample_rate_hz)


def _normalise_text(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def evaluate_vocoder(
    vocoder: CopySynthesizer,
    files: Sequence[Path],
    *,
    asr: bool = True,
    out_dir: Path | None = None,
    asr_threads: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Copy-synthesise ``files``; report spectral distances and the ASR WER of copies vs originals.

    Distances use the trained vocoders' analysis (16 kHz, 80-band log-mel, n_fft 1024, hop 256)
    for every vocoder, pretrained ones included, so the rows compare. The WER reference is
    Whisper-base's transcript of the original (no ground-truth transcripts ship with these
    clips), so it measures what the vocoder loses, not ASR errors.
    """
    # Torch: the networks load on use, so importing this module stays cheap.
    from services.detector.dataset.neural_vocoder_nets import VocoderConfig

    measure = VocoderConfig(name="measure")
    rows = []
    model = None
    if asr:
        # faster-whisper loads only when the ASR check runs.
        from faster_whisper import WhisperModel

        model = WhisperModel(str(whisper_model_dir("base")), device="cpu", compute_type="int8", cpu_threads=asr_threads)

    def transcribe(audio: Audio) -> str:
        assert model is not None
        segments, _ = model.transcribe(audio.samples, language="en", beam_size=1, vad_filter=False)
        return _normalise_text(" ".join(segment.text for segment in segments))

    synth_s = 0.0
    audio_s = 0.0
    for path in files:
        original = load_audio(path, TRAIN_POLICY)
        started = time.monotonic()
        copy = vocoder.copy_synthesize(original)
        synth_s += time.monotonic() - started
        audio_s += original.duration_s
        row: dict[str, Any] = {"file": path.name, **spectral_distances(copy, original, measure)}
        if out_dir is not None:
            copy.write(Path(out_dir) / f"{path.stem}.{vocoder.name}.wav")
        if model is not None:
            row["ref"], row["hyp"] = transcribe(original), transcribe(copy)
        rows.append(row)
        log(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
    summary: dict[str, Any] = {
        "vocoder": vocoder.name,
        "clips": len(rows),
        **{key: float(np.mean([row[key] for row in rows])) for key in ("mel_l1", "stft_sc", "stft_logmag")},
        "real_time_factor": synth_s / max(audio_s, 1e-9),
    }
    if model is not None:
        summary["wer_copy_vs_original_asr"] = float(
            jiwer.wer([row["ref"] for row in rows], [row["hyp"] for row in rows])
        )
    return summary
