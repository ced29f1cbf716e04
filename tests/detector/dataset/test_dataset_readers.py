"""Each corpus reader on a small fixture of its real layout, built from real LibriSpeech audio."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.detector.dataset.readers import (
    CorpusError,
    read_asvspoof2019,
    read_commonvoice,
    read_corpus,
    read_folder,
    read_librispeech,
    read_shared_manifest,
    read_timit,
)
from shared.audio import SilentAudioError, UnreadableAudioError, load_audio


@pytest.fixture(scope="module")
def real_clips(shared_data_dir: Path) -> list[Path]:
    return sorted((shared_data_dir / "librispeech" / "test-other").rglob("*.flac"))[:4]


def test_shared_manifest_reads_the_real_table(shared_data_dir: Path) -> None:
    manifest = shared_data_dir / "librispeech" / "manifest.tsv"
    test_other = list(read_shared_manifest(manifest, include="test-other/"))
    assert len(test_other) == 100
    assert {r.label for r in test_other} == {"bonafide"}
    assert len({r.speaker for r in test_other}) == 10
    assert all(r.path.is_file() for r in test_other)
    everything = read_corpus("shared-manifest", manifest)
    assert len(everything) > len(test_other)


def test_shared_manifest_missing_column(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.tsv"
    bad.write_text("file\tlabel\nx.wav\tbonafide\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="path"):
        list(read_shared_manifest(bad))


def test_librispeech_layout(tmp_path: Path, real_clips: list[Path]) -> None:
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "1688" / "142285"
    chapter.mkdir(parents=True)
    lines = []
    for index, clip in enumerate(real_clips[:3]):
        utt = f"1688-142285-{index:04d}"
        shutil.copy(clip, chapter / f"{utt}.flac")
        lines.append(f"{utt} SOME WORDS NUMBER {index}")
    (chapter / "1688-142285.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    recordings = list(read_librispeech(tmp_path / "LibriSpeech"))
    assert [r.speaker for r in recordings] == ["LS-1688"] * 3
    assert recordings[1].transcript == "SOME WORDS NUMBER 1"
    assert load_audio(recordings[0].path).sample_rate_hz == 16_000
    with pytest.raises(CorpusError):
        list(read_librispeech(tmp_path / "missing"))


def test_commonvoice_layout(tmp_path: Path, real_clips: list[Path]) -> None:
    clips = tmp_path / "cv-corpus" / "en" / "clips"
    clips.mkdir(parents=True)
    rows = ["client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent"]
    for index, clip in enumerate(real_clips[:2]):
        data, rate = sf.read(clip)
        name = f"common_voice_en_{index}.mp3"
        sf.write(clips / name, data, rate, format="MP3")  # Common Voice ships MP3
        rows.append(f"client{index % 2}abcdef0123456789\t{name}\tSentence {index}.\t2\t0\t\t\t")
    rows.append("clientX\tmissing.mp3\tNot on disk.\t2\t0\t\t\t")
    (tmp_path / "cv-corpus" / "en" / "validated.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    recordings = list(read_commonvoice(tmp_path / "cv-corpus" / "en"))
    assert len(recordings) == 2  # the row without a clip is skipped
    assert recordings[0].transcript == "Sentence 0."
    assert recordings[0].speaker != recordings[1].speaker
    assert load_audio(recordings[0].path).duration_s > 1.0


def test_timit_layout(tmp_path: Path, real_clips: list[Path]) -> None:
    for subset, speaker, clip in (("TRAIN", "MJSW0", real_clips[0]), ("TEST", "FDHC0", real_clips[1])):
        folder = tmp_path / "TIMIT" / subset / "DR1" / speaker
        folder.mkdir(parents=True)
        data, rate = sf.read(clip, dtype="int16")
        # TIMIT's own files are NIST SPHERE with an upper-case .WAV suffix.
        sf.write(folder / "SI1010.WAV", data, rate, format="NIST", subtype="PCM_16")
        (folder / "SI1010.TXT").write_text("0 46797 She had your dark suit in greasy wash water.\n", encoding="utf-8")
        sf.write(folder / "SA1.WAV", data, rate, format="NIST", subtype="PCM_16")
    recordings = list(read_timit(tmp_path / "TIMIT"))
    assert [(r.speaker, r.native_split) for r in recordings] == [("TIMIT-MJSW0", "train"), ("TIMIT-FDHC0", "test")]
    assert recordings[0].transcript == "She had your dark suit in greasy wash water."
    assert load_audio(recordings[1].path).duration_s > 1.0


def test_asvspoof2019_layout(tmp_path: Path, real_clips: list[Path]) -> None:
    root = tmp_path / "LA"
    (root / "ASVspoof2019_LA_cm_protocols").mkdir(parents=True)
    for subset, suffix, prefix in (("train", "train.trn", "T"), ("dev", "dev.trl", "D")):
        flac = root / f"ASVspoof2019_LA_{subset}" / "flac"
        flac.mkdir(parents=True)
        shutil.copy(real_clips[0], flac / f"LA_{prefix}_1000001.flac")
        shutil.copy(real_clips[1], flac / f"LA_{prefix}_1000002.flac")
        protocol = f"LA_0079 LA_{prefix}_1000001 - - bonafide\nLA_0079 LA_{prefix}_1000002 - A01 spoof\n"
        (root / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{suffix}.txt").write_text(protocol)
    recordings = list(read_asvspoof2019(root))
    assert [(r.label, r.system, r.native_split) for r in recordings] == [
        ("bonafide", "bonafide", "train"),
        ("spoof", "asvspoof2019-A01", "train"),
        ("bonafide", "bonafide", "dev"),
        ("spoof", "asvspoof2019-A01", "dev"),
    ]
    assert all(r.path.is_file() for r in recordings)
    (root / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.train.trn.txt").write_text("LA_0079 broken\n")
    with pytest.raises(CorpusError, match=r"train\.trn"):
        list(read_asvspoof2019(root))


def _encode_g722(source: Path, target: Path) -> None:
    """Headerless G.722 at 16 kHz, as Debian's asterisk-core-sounds-en-g722 ships its prompts."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-ar", "16000"]
    subprocess.run([*command, "-acodec", "g722", "-f", "g722", str(target)], check=True)


def test_folder_layout_with_g722_prompts(tmp_path: Path, real_clips: list[Path]) -> None:
    prompts = tmp_path / "en_US_f_Allison"
    (prompts / "digits").mkdir(parents=True)
    (prompts / "silence").mkdir()
    _encode_g722(real_clips[0], prompts / "welcome.g722")
    shutil.copy(real_clips[1], prompts / "digits" / "1.flac")
    shutil.copy(real_clips[2], prompts / "silence" / "1.flac")
    (prompts / "CREDITS.txt").write_text("Recorded by a voice talent\n", encoding="utf-8")
    recordings = list(read_folder(prompts, exclude=["silence/"]))
    assert [r.path.relative_to(prompts).as_posix() for r in recordings] == ["digits/1.flac", "welcome.g722"]
    assert {r.speaker for r in recordings} == {"en_US_f_Allison"}  # the folder's name by default
    named = read_corpus("folder", prompts, include="digits/", speaker="allison")
    assert [(r.path.name, r.speaker, r.label) for r in named] == [("1.flac", "allison", "bonafide")]
    # The G.722 prompt decodes to the speech it was encoded from (G.722 is lossy; the envelope stays).
    original = load_audio(real_clips[0])
    decoded = load_audio(prompts / "welcome.g722")
    assert decoded.sample_rate_hz == 16_000
    assert abs(decoded.duration_s - original.duration_s) < 0.05
    frames = min(original.num_samples, decoded.num_samples) // 320
    envelope = [
        np.sqrt(np.mean(audio.samples[: frames * 320].reshape(frames, 320) ** 2, axis=1))
        for audio in (original, decoded)
    ]
    assert np.corrcoef(*envelope)[0, 1] > 0.95
    with pytest.raises(CorpusError, match="folder not found"):
        list(read_folder(tmp_path / "missing"))
    with pytest.raises(CorpusError, match="no audio files"):
        list(read_folder(prompts, include="nothing-here/"))


def test_g722_errors_name_the_file(tmp_path: Path, real_clips: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.g722"
    empty.write_bytes(b"")
    with pytest.raises(SilentAudioError, match=r"empty\.g722: the file holds no samples"):
        load_audio(empty)
    prompt = tmp_path / "prompt.g722"
    _encode_g722(real_clips[0], prompt)
    monkeypatch.setattr("shared.audio.shutil.which", lambda name: None)
    with pytest.raises(UnreadableAudioError, match=r"prompt\.g722: G\.722 needs ffmpeg"):
        load_audio(prompt)
