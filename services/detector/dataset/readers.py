"""Readers of real-speech corpora: each yields :class:`Recording` rows (no audio is decoded here).

Supported layouts:

* ``shared-manifest``: the ``manifest.tsv`` of ``../shared/data`` (``path``, ``label``, ``speaker``,
  ``system``, ..., ``transcript``; paths relative to the manifest's folder);
* ``librispeech``: ``<root>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with
  ``<speaker>-<chapter>.trans.txt`` (flat folders of ``<speaker>-...flac`` work too);
* ``commonvoice``: ``<root>/validated.tsv`` (``client_id``, ``path``, ``sentence``) + ``<root>/clips/``;
* ``timit``: ``<root>/{TRAIN,TEST}/DR?/<speaker>/<utt>.WAV`` (+ ``<utt>.TXT``), any letter case;
  the ``SA`` sentences, read by every speaker, are skipped (their text would leak across splits);
* ``asvspoof2019``: the LA protocol files ``ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.*.txt``
  (``speaker file - system label``) and ``ASVspoof2019_LA_{train,dev,eval}/flac/<file>.flac``;
* ``folder``: every audio file under a folder, all of one speaker (a voice talent's prompts, say:
  Debian's ``asterisk-core-sounds-en-g722``), no transcripts.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.detector.dataset.config import ReaderKind
from shared.audio import READABLE_SUFFIXES, audio_files


class CorpusError(ValueError):
    """A corpus folder or file that does not have the expected layout; the message names it."""


@dataclass(frozen=True)
class Recording:
    """One recording of a corpus.

    ``native_split`` is the corpus's own split (``train``/``dev``/``test``) where it has one.
    ``label`` is ``bonafide`` for real speech; ASVspoof also lists its ``spoof`` files.
    """

    path: Path
    speaker: str
    transcript: str = ""
    label: str = "bonafide"
    system: str = "bonafide"
    native_split: str | None = None


def _kept(relative: str, include: str, exclude: Sequence[str]) -> bool:
    return relative.startswith(include) and not any(relative.startswith(prefix) for prefix in exclude)


def read_shared_manifest(path: Path, include: str = "", exclude: Sequence[str] = ()) -> Iterator[Recording]:
    """Rows of a ``../shared/data`` style ``manifest.tsv`` whose path starts with ``include`` and
    with none of ``exclude``."""
    if not path.is_file():
        raise CorpusError(f"{path}: manifest not found")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = {"path", "label", "speaker"} - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{path}: manifest lacks column(s) {', '.join(sorted(missing))}")
        for row in reader:
            if not _kept(row["path"], include, exclude):
                continue
            yield Recording(
                path=path.parent / row["path"],
                speaker=row["speaker"],
                transcript=(row.get("transcript") or "").strip(),
                label=row["label"],
                system=row.get("system") or row["label"],
            )


def read_librispeech(root: Path) -> Iterator[Recording]:
    """LibriSpeech: every ``*.flac`` under ``root``; speaker = the id before the first ``-``."""
    if not root.is_dir():
        raise CorpusError(f"{root}: LibriSpeech folder not found")
    transcripts: dict[str, str] = {}
    for trans in root.rglob("*.trans.txt"):
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.partition(" ")
            transcripts[utt] = text.strip()
    found = False
    for flac in sorted(root.rglob("*.flac")):
        found = True
        utt = flac.stem
        yield Recording(path=flac, speaker="LS-" + utt.split("-")[0], transcript=transcripts.get(utt, ""))
    if not found:
        raise CorpusError(f"{root}: no .flac files (expected LibriSpeech <speaker>/<chapter>/*.flac)")


def read_commonvoice(root: Path) -> Iterator[Recording]:
    """Common Voice: ``validated.tsv`` rows whose clip exists in ``clips/``; speaker = ``client_id``."""
    table = root / "validated.tsv"
    if not table.is_file():
        raise CorpusError(f"{root}: no validated.tsv (expected a Common Voice language folder)")
    with table.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"client_id", "path", "sentence"} - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{table}: lacks column(s) {', '.join(sorted(missing))}")
        for row in reader:
            clip = root / "clips" / row["path"]
            if clip.is_file():
                yield Recording(path=clip, speaker="CV-" + row["client_id"][:16], transcript=row["sentence"])


def _child(folder: Path, name: str) -> Path | None:
    """``folder/name`` matched without regard to letter case (TIMIT ships in both)."""
    for entry in folder.iterdir():
        if entry.name.lower() == name.lower():
            return entry
    return None


_TIMIT_AUDIO = re.compile(r"^(s[ix]\d+)\.wav$", re.IGNORECASE)


def read_timit(root: Path) -> Iterator[Recording]:
    """TIMIT: ``TRAIN``/``TEST`` → native split train/test; ``SA`` sentences skipped."""
    if not root.is_dir():
        raise CorpusError(f"{root}: TIMIT folder not found")
    found = False
    for subset, split in (("train", "train"), ("test", "test")):
        folder = _child(root, subset)
        if folder is None:
            continue
        for dialect in sorted(p for p in folder.iterdir() if p.is_dir()):
            for speaker in sorted(p for p in dialect.iterdir() if p.is_dir()):
                for audio in sorted(speaker.iterdir()):
                    # Some copies hold both the SPHERE `.WAV` and a converted `.WAV.wav`; take the first.
                    match = _TIMIT_AUDIO.match(audio.name)
                    if not match:
                        continue
                    text_file = _child(speaker, match.group(1) + ".txt")
                    transcript = ""
                    if text_file is not None:
                        # "<start> <end> The words." — drop the two sample offsets.
                        transcript = " ".join(text_file.read_text(encoding="utf-8").split()[2:])
                    found = True
                    yield Recording(
                        path=audio,
                        speaker="TIMIT-" + speaker.name.upper(),
                        transcript=transcript,
                        native_split=split,
                    )
    if not found:
        raise CorpusError(f"{root}: no TIMIT utterances (expected TRAIN|TEST/DR?/<speaker>/S[IX]*.WAV)")


def read_folder(root: Path, speaker: str = "", include: str = "", exclude: Sequence[str] = ()) -> Iterator[Recording]:
    """Every audio file under ``root`` (:func:`shared.audio.audio_files`), all of ``speaker``
    (default: the folder's name); paths relative to ``root`` filtered by ``include`` / ``exclude``
    prefixes."""
    if not root.is_dir():
        raise CorpusError(f"{root}: folder not found")
    speaker = speaker or root.name
    found = False
    for audio in audio_files(root):
        if _kept(audio.relative_to(root).as_posix(), include, exclude):
            found = True
            yield Recording(path=audio, speaker=speaker)
    if not found:
        suffixes = ", ".join(sorted(READABLE_SUFFIXES))
        raise CorpusError(f"{root}: no audio files ({suffixes}) under the folder")


_ASV_SUBSETS = (("train", "train.trn", "train"), ("dev", "dev.trl", "dev"), ("eval", "eval.trl", "test"))


def read_asvspoof2019(root: Path) -> Iterator[Recording]:
    """ASVspoof 2019 LA: all protocol rows (bonafide and spoof); train/dev/eval → train/dev/test."""
    protocols = root / "ASVspoof2019_LA_cm_protocols"
    if not protocols.is_dir():
        raise CorpusError(f"{root}: no ASVspoof2019_LA_cm_protocols folder")
    found = False
    for subset, suffix, split in _ASV_SUBSETS:
        protocol = protocols / f"ASVspoof2019.LA.cm.{suffix}.txt"
        if not protocol.is_file():
            continue
        audio_dir = root / f"ASVspoof2019_LA_{subset}" / "flac"
        for number, line in enumerate(protocol.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 5 or fields[4] not in ("bonafide", "spoof"):
                raise CorpusError(f"{protocol}:{number}: expected 'speaker file - system label', got {line!r}")
            speaker, file_id, _, system, label = fields
            found = True
            yield Recording(
                path=audio_dir / f"{file_id}.flac",
                speaker="ASV-" + speaker,
                label=label,
                system="bonafide" if label == "bonafide" else f"asvspoof2019-{system}",
                native_split=split,
            )
    if not found:
        raise CorpusError(f"{protocols}: no ASVspoof2019.LA.cm.{{train.trn,dev.trl,eval.trl}}.txt protocol")


READERS: dict[str, Callable[..., Iterator[Recording]]] = {
    "librispeech": read_librispeech,
    "commonvoice": read_commonvoice,
    "timit": read_timit,
    "asvspoof2019": read_asvspoof2019,
}


def read_corpus(
    kind: ReaderKind, path: Path, include: str = "", exclude: Sequence[str] = (), speaker: str = ""
) -> list[Recording]:
    """All recordings of one corpus (bonafide and, for ASVspoof, spoof rows).

    ``include`` / ``exclude`` (path prefixes) apply to ``shared-manifest`` and ``folder``;
    ``speaker`` to ``folder``.
    """
    if kind == "shared-manifest":
        return list(read_shared_manifest(path, include, exclude))
    if kind == "folder":
        return list(read_folder(path, speaker, include, exclude))
    return list(READERS[kind](path))
