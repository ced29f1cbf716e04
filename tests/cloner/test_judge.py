"""The speaker judge: its front end, its data helpers, its export, and the shipped model on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cloner.judge.data import Utterance, halve_single_recordings, merge_short, split_speakers
from services.cloner.judge.front_end import FrontEnd
from services.cloner.judge.network import NetworkConfig, SpeakerNetwork
from services.cloner.judge.score import DEFAULT_JUDGE_DIR, JudgeModelError, SpeakerJudge
from services.cloner.judge.train import VerificationReport, export_judge
from shared.audio import decode_audio
from vcfad.cli import main as vcfad_main


def _utterance(speaker: str, index: int, frames: int) -> Utterance:
    return Utterance(speaker, "test", f"{speaker}/{index}.wav", np.zeros((frames, 4), np.float32))


def test_front_end_scores_the_telephone_band_only(real_clip: Path):
    """A wideband clip and its 8 kHz copy give the same frames: the judge cannot tell sample rates."""
    front_end = FrontEnd()
    audio = decode_audio(real_clip)
    wide, narrow = front_end.frames(audio), front_end.frames(audio.resample(8000))
    assert wide.shape[1] == front_end.n_mels and abs(len(wide) - len(narrow)) <= 2
    count = min(len(wide), len(narrow))
    assert np.abs(wide[:count] - narrow[:count]).mean() < 0.1
    assert np.allclose(wide.mean(axis=0), 0.0, atol=1e-4)  # mean-normalised: a fixed channel cancels


@given(lengths=st.lists(st.integers(min_value=10, max_value=300), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_merge_short_keeps_every_frame_of_kept_speech(lengths: list[int]):
    clips = [_utterance("s", i, n) for i, n in enumerate(lengths)]
    merged = merge_short(clips, min_duration_s=1.0)
    assert all(u.duration_s >= 1.0 for u in merged)
    total = sum(lengths)
    assert sum(len(u.frames) for u in merged) == (total if total >= 100 else 0)


def test_split_speakers_keeps_speakers_whole_and_is_stable():
    pool = [_utterance(f"spk{s}", i, 50) for s in range(200) for i in range(3)]
    train, held_out = split_speakers(pool, held_out_fraction=0.2, seed=7)
    assert not {u.speaker for u in train} & {u.speaker for u in held_out}
    assert 20 <= len({u.speaker for u in held_out}) <= 60
    assert split_speakers(pool, 0.2, 7) == (train, held_out)


def test_single_recordings_become_two_halves():
    halves = halve_single_recordings([_utterance("a", 0, 101), _utterance("b", 0, 50), _utterance("b", 1, 50)])
    assert [len(u.frames) for u in halves if u.speaker == "a"] == [50, 51]
    assert len([u for u in halves if u.speaker == "b"]) == 2


def test_export_matches_torch_and_scores_through_onnx(tmp_path: Path, real_clip: Path):
    network = SpeakerNetwork(NetworkConfig(channels=32, embedding_dim=16)).eval()
    assert export_judge(network, tmp_path) <= 1e-4
    (tmp_path / "judge.json").write_text('{"name": "tiny", "front_end": {}}')
    judge = SpeakerJudge(tmp_path)
    audio = decode_audio(real_clip)
    assert judge.similarity(audio, audio) == pytest.approx(1.0, abs=1e-6)


def test_missing_model_is_a_clear_error(tmp_path: Path, real_clip: Path, capsys):
    with pytest.raises(JudgeModelError, match="vcfad judge train"):
        SpeakerJudge(tmp_path)
    assert vcfad_main(["judge", "similarity", str(real_clip), str(real_clip), "--model", str(tmp_path)]) == 2
    assert "no speaker judge there" in capsys.readouterr().err


def test_shipped_judge_tells_unseen_speakers_apart(speaker_files: dict[str, list[Path]]):
    """LibriSpeech test-other speakers (never in the judge's training): same-speaker pairs score
    above different-speaker pairs, and the EER over all pairs stays far from chance."""
    judge = SpeakerJudge(DEFAULT_JUDGE_DIR)
    utterances = [
        Utterance(speaker, "librispeech", str(path), judge.front_end.frames(decode_audio(path).crop(0, 6)))
        for speaker, paths in speaker_files.items()
        for path in paths[:4]
    ]
    report = VerificationReport.measure("test-other", utterances, judge.embed_frames)
    assert report.speakers == len(speaker_files) and report.target_trials == 6 * len(speaker_files)
    assert report.eer < 0.25


def test_similarity_command_prints_a_cosine(speaker_files: dict[str, list[Path]], capsys):
    first, second = next(iter(speaker_files.values()))[:2]
    assert vcfad_main(["judge", "similarity", str(first), str(second)]) == 0
    assert -1.0 <= float(capsys.readouterr().out) <= 1.0
