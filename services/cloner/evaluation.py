"""``vcfad eval-clone``: the four-technique cloning evaluation of the reference project.

For each of the 10 LibriSpeech test-other speakers: short reference = one utterance, long
reference = the speaker's other utterances merged; short text = one VCTK sentence, long text =
four. Each (reference, text) cell is cloned by each backend and judged by

* WER of Whisper (faster-whisper, offline ``base`` by default) against the text, plus the WER of
  a second recogniser (``tiny.en``) so that a backend tuned on one recogniser is caught;
* GE2E cosine similarity of the clone to the reference it was conditioned on;
* the speaker judge (:class:`~services.cloner.judge.score.SpeakerJudge`), a verification network
  trained here that no part of the cloner uses: cosine to the reference the clone was conditioned
  on, and the share of clones whose nearest reference under the judge is their own speaker's
  (identification, 10-way);
* prosody against the conditioning reference: pitch error = |difference of median F0| in
  semitones (:func:`shared.voice_analysis.analyse_voice`); pace error = |articulation-rate ratio
  − 1|, each rate = syllables of the words (the clone's text; Whisper's transcript of the
  reference's first ≤ 20 s) per second of phonation (:class:`shared.voice_analysis.VoiceAnalysis`).

LibriSpeech clips here carry no transcripts, so the recognisers' WER on the real recordings
cannot be measured; the report gives the two recognisers' disagreement on them instead (a
lower bound on their own error) and says so.
"""

from __future__ import annotations

import csv
import json
import logging
import platform
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from services.cloner.backends import create_backend
from services.cloner.backends.kokoro_ge2e import reference_rate_hz
from services.cloner.config import ClonerSettings
from services.cloner.encoder import ReferenceEncoder
from services.cloner.judge.score import DEFAULT_JUDGE_DIR, SpeakerJudge
from services.cloner.pipeline import Cloner, envelope_fitter
from shared.asr import SpeechRecognizer, word_error_rate
from shared.audio import load_audio
from shared.metrics import percentile_interval
from shared.speaker import cosine_similarity
from shared.tts.kokoro import text_syllables
from shared.voice_analysis import analyse_voice

logger = logging.getLogger(__name__)

CELLS = (
    ("short-ref", "short-text"),
    ("short-ref", "long-text"),
    ("long-ref", "short-text"),
    ("long-ref", "long-text"),
)
#: The reference project's WER (RTVC) per cell, in the order of :data:`CELLS`.
RTVC_WER = (0.25, 0.58, 0.16, 0.44)


@dataclass
class EvalConfig:
    data_dir: Path | None = None
    backends: tuple[str, ...] = ("kokoro-ge2e", "piper")
    asr_model: str = "base"
    second_asr_model: str | None = "tiny.en"
    speakers: int = 10
    output_stem: Path = Path("docs/clone-eval")
    work_dir: Path = Path("var/clone-eval")
    seed: int = 0
    long_text_sentences: int = 4
    #: Also score each backend's clones without the channel stage (an ablation row per backend).
    channel_ablation: bool = True
    #: The speaker judge's model folder (``vcfad judge train``).
    judge_dir: Path = DEFAULT_JUDGE_DIR


@dataclass
class Item:
    backend: str
    speaker: str
    reference: str
    text_kind: str
    text: str
    path: str
    duration_s: float
    synth_s: float
    enroll_s: float = 0.0
    transcript: str = ""
    wer: float = float("nan")
    transcript_2: str = ""
    wer_2: float = float("nan")
    ge2e: float = float("nan")
    #: Mean GE2E cosine to the *other* speakers' references of the same kind (speaker-specificity check).
    ge2e_others: float = float("nan")
    ge2e_identified: bool = False
    #: The judge's cosine to the conditioning reference, and whether it picks the right speaker.
    judge: float = float("nan")
    judge_identified: bool = False
    #: |median F0 of the clone − the reference's|, in semitones.
    pitch_error_st: float = float("nan")
    #: |the clone's articulation rate / the reference's − 1|.
    rate_error: float = float("nan")
    extra: dict = field(default_factory=dict)


def default_data_dir() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def development_references(data_dir: Path, first: int, count: int) -> list[tuple[str, Path]]:
    """(speaker, one ~12 s utterance) of LibriSpeech **train-clean-100** speakers ``first`` to
    ``first + count`` in manifest order: development data, never the test-other speakers above."""
    with (data_dir / "librispeech" / "manifest.tsv").open(encoding="utf-8") as stream:
        rows = [r for r in csv.DictReader(stream, delimiter="\t") if r["path"].startswith("train-clean-100/")]
    return [(row["speaker"], data_dir / "librispeech" / row["path"]) for row in rows[first : first + count]]


def development_texts(data_dir: Path) -> list[str]:
    """VCTK sentences for development runs: a fixed stride through the file, none of :func:`pick_texts`'s."""
    with (data_dir / "text" / "vctk_transcripts.csv").open(encoding="utf-8") as stream:
        return [r["transcript"] for r in csv.DictReader(stream)][1000::53]


def pick_texts(csv_path: Path, speakers: list[str], sentences: int, seed: int) -> dict[str, tuple[str, str]]:
    """Per speaker: (short text = one sentence, long text = ``sentences`` sentences), all distinct."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = [row["transcript"].strip() for row in csv.DictReader(handle)]
    pool = sorted({t for t in rows if 6 <= len(t.split()) <= 18 and t.isascii() and t[-1] in ".?!"})
    rng = random.Random(seed)
    rng.shuffle(pool)
    texts = {}
    for index, speaker in enumerate(speakers):
        chunk = pool[index * (sentences + 1) : (index + 1) * (sentences + 1)]
        texts[speaker] = (chunk[0], " ".join(chunk[1:]))
    return texts


def _measured_mean(values: list[float]) -> float:
    """Mean of the values that were measured (NaN = not measurable, e.g. no voiced frame); NaN if none."""
    measured = [value for value in values if not np.isnan(value)]
    return float(np.mean(measured)) if measured else float("nan")


def _corpus_wer(items: list[Item], attr: str = "transcript") -> float:
    return word_error_rate([i.text for i in items], [getattr(i, attr) for i in items])


def run_evaluation(config: EvalConfig) -> dict:
    """Clone every cell with every backend, judge, and write ``<stem>.json`` and ``<stem>.md``."""
    data_dir = config.data_dir or default_data_dir()
    corpus = data_dir / "librispeech" / "test-other"
    if not corpus.is_dir():
        raise FileNotFoundError(f"{corpus}: LibriSpeech test-other not found (see ../shared/data/README.md)")
    speakers = sorted(p.name for p in corpus.iterdir() if p.is_dir())[: config.speakers]
    files = {s: sorted((corpus / s).glob("*.flac")) for s in speakers}
    texts = pick_texts(data_dir / "text" / "vctk_transcripts.csv", speakers, config.long_text_sentences, config.seed)
    started = time.perf_counter()
    items: list[Item] = []
    base_settings = ClonerSettings()
    reference_encoder = ReferenceEncoder(
        max_duration_s=base_settings.max_reference_duration_s,
        min_speech_s=base_settings.min_reference_speech_s,
        threads=base_settings.threads,
    )
    # Stage 1 once for every backend: the same references give the same embeddings.
    voices = {}
    for speaker in speakers:
        references = {"short-ref": files[speaker][:1], "long-ref": files[speaker][1:]}
        for ref_kind, ref_files in references.items():
            voices[(speaker, ref_kind)] = reference_encoder([str(f) for f in ref_files])
    logger.warning("references encoded (%.0f s)", time.perf_counter() - started)
    for backend in config.backends:
        settings = base_settings.model_copy(update={"backend": backend})
        t0 = time.perf_counter()
        cloner = Cloner(
            settings,
            reference_encoder,
            create_backend(backend, settings, reference_encoder.speaker_encoder),
            envelope_fitter=envelope_fitter(settings),
        )
        logger.warning("%s: loaded in %.1f s", backend, time.perf_counter() - t0)
        for (speaker, ref_kind), voice in voices.items():
            t0 = time.perf_counter()
            enrolled = cloner.enroll(voice)
            enroll_s = time.perf_counter() - t0
            for text_kind, text in zip(("short-text", "long-text"), texts[speaker], strict=True):
                t0 = time.perf_counter()
                raw = cloner.synthesize(enrolled, text)
                synth_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                variants = [(backend, backend, cloner.finish(raw, enrolled if settings.match_channel else None, text))]
                finish_s = time.perf_counter() - t0
                if config.channel_ablation and settings.match_channel:
                    variants.append((f"{backend} (no channel match)", f"{backend}-no-channel", cloner.finish(raw)))
                for row_name, folder, audio in variants:
                    path = config.work_dir / folder / f"{speaker}_{ref_kind}_{text_kind}.wav"
                    audio.write(path)
                    spent_s = synth_s + (finish_s if row_name == backend else 0.0)
                    cell = (speaker, ref_kind, text_kind, text, str(path))
                    items.append(Item(row_name, *cell, audio.duration_s, spent_s, enroll_s))
                enroll_s = 0.0
            logger.warning("%s: %s %s done (%.0f s so far)", backend, speaker, ref_kind, time.perf_counter() - started)
        del cloner

    # -- speaker measures -------------------------------------------------------------------
    encoder = reference_encoder.speaker_encoder
    reference_embeddings = {key: voice.embedding for key, voice in voices.items()}
    real_clips = {s: {kind: list(voices[(s, kind)].clips) for kind in ("short-ref", "long-ref")} for s in speakers}
    judge = SpeakerJudge(config.judge_dir, threads=base_settings.threads)
    judge_references = {key: judge.embed(list(voice.clips)) for key, voice in voices.items()}
    clone_rates: dict[str, float] = {}  # syllables of the text per second of the clone's phonation
    for item in items:
        audio = load_audio(item.path)
        embedding = encoder.embed(audio)
        ge2e = {s: cosine_similarity(embedding, reference_embeddings[(s, item.reference)]) for s in speakers}
        item.ge2e = ge2e[item.speaker]
        item.ge2e_others = float(np.mean([v for s, v in ge2e.items() if s != item.speaker]))
        item.ge2e_identified = max(ge2e, key=ge2e.__getitem__) == item.speaker
        judged = judge.embed(audio)
        by_judge = {s: float(np.dot(judged, judge_references[(s, item.reference)])) for s in speakers}
        item.judge = by_judge[item.speaker]
        item.judge_identified = max(by_judge, key=by_judge.__getitem__) == item.speaker
        spoken, reference = analyse_voice(audio), voices[(item.speaker, item.reference)].stats
        if spoken.median_f0_hz > 0 and reference.get("median_f0_hz", 0.0) > 0:
            item.pitch_error_st = abs(12 * float(np.log2(spoken.median_f0_hz / reference["median_f0_hz"])))
        clone_rates[item.path] = spoken.articulation_rate_hz(text_syllables(item.text))
    real_ge2e = [
        cosine_similarity(reference_embeddings[(s, "short-ref")], reference_embeddings[(s, "long-ref")])
        for s in speakers
    ]
    real_judge = [
        float(np.dot(judge_references[(s, "short-ref")], judge_references[(s, "long-ref")])) for s in speakers
    ]

    # -- recognisers -------------------------------------------------------------------------
    recognisers = [(config.asr_model, "transcript", "wer")]
    if config.second_asr_model:
        recognisers.append((config.second_asr_model, "transcript_2", "wer_2"))
    real_transcripts: dict[str, list[str]] = {}
    for model_name, text_attr, wer_attr in recognisers:
        asr = SpeechRecognizer(model_name)
        for item in items:
            hypothesis = asr.transcribe(load_audio(item.path))
            setattr(item, text_attr, hypothesis)
            setattr(item, wer_attr, word_error_rate(item.text, hypothesis))
        real_transcripts[model_name] = [asr.transcribe(real_clips[s]["short-ref"][0]) for s in speakers]
        if model_name == config.asr_model:
            # The reference's pace, by the rate fit's own measure.
            reference_rates = {key: reference_rate_hz(voice, asr) for key, voice in voices.items()}
            for item in items:
                clone, real = clone_rates[item.path], reference_rates[(item.speaker, item.reference)]
                if clone > 0 and real > 0:
                    item.rate_error = abs(clone / real - 1)
        del asr
    disagreement = None
    if config.second_asr_model:
        disagreement = word_error_rate(real_transcripts[config.asr_model], real_transcripts[config.second_asr_model])

    report = summarise(items, config, speakers, real_ge2e, real_judge, disagreement)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    # What the cloner ran with (from the environment, VCFAD_CLONER_*; the backend is each row's):
    # the report names its own settings.
    report["cloner_settings"] = base_settings.model_dump(mode="json", exclude={"backend"})
    write_report(report, config.output_stem)
    return report


def summarise(
    items: list[Item],
    config: EvalConfig,
    speakers: list[str],
    real_ge2e: list[float],
    real_judge: list[float],
    asr_disagreement: float | None,
) -> dict:
    groups: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    for item in items:
        groups[(item.backend, item.reference, item.text_kind)].append(item)
    rows = []
    for backend in dict.fromkeys(item.backend for item in items):
        for (ref_kind, text_kind), rtvc in zip(CELLS, RTVC_WER, strict=True):
            group = groups[(backend, ref_kind, text_kind)]
            if not group:
                continue
            audio_s = sum(i.duration_s for i in group)
            rows.append(
                {
                    "backend": backend,
                    "reference": ref_kind,
                    "text": text_kind,
                    "n": len(group),
                    "wer": round(_corpus_wer(group), 4),
                    "wer_second_asr": round(_corpus_wer(group, "transcript_2"), 4) if config.second_asr_model else None,
                    "ge2e_similarity": round(float(np.mean([i.ge2e for i in group])), 4),
                    "ge2e_min": round(float(np.min([i.ge2e for i in group])), 4),
                    "ge2e_others": round(float(np.mean([i.ge2e_others for i in group])), 4),
                    "ge2e_id_accuracy": round(float(np.mean([i.ge2e_identified for i in group])), 3),
                    "judge_similarity": round(float(np.mean([i.judge for i in group])), 4),
                    "judge_id_accuracy": round(float(np.mean([i.judge_identified for i in group])), 3),
                    "pitch_error_st": round(_measured_mean([i.pitch_error_st for i in group]), 3),
                    "rate_error": round(_measured_mean([i.rate_error for i in group]), 3),
                    "synthesis_rtf": round(sum(i.synth_s for i in group) / audio_s, 3),
                    "rtvc_wer": rtvc,
                }
            )
    enroll = defaultdict(list)
    for item in items:
        if item.enroll_s:
            enroll[item.backend].append(item.enroll_s)
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "speakers": speakers,
        "machine": {"cpu_count": __import__("os").cpu_count(), "python": platform.python_version()},
        "cells": rows,
        "real": {
            "ge2e_short_vs_long_reference": round(float(np.mean(real_ge2e)), 4),
            "judge_short_vs_long_reference": round(float(np.mean(real_judge)), 4),
            "asr_disagreement_base_vs_second": None if asr_disagreement is None else round(asr_disagreement, 4),
        },
        "enroll_s_mean": {k: round(float(np.mean(v)), 1) for k, v in enroll.items()},
        "items": [asdict(i) for i in items],
    }


def write_report(report: dict, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    cfg = report["config"]
    lines = [
        "# Cloning evaluation (`vcfad eval-clone`)",
        "",
        f"LibriSpeech test-other, {len(report['speakers'])} speakers; short reference = one utterance, long reference "
        "= the speaker's other utterances merged; short text = one VCTK sentence, long text = "
        f"{cfg['long_text_sentences']} sentences. WER judge: Whisper `{cfg['asr_model']}` (faster-whisper, int8); "
        f"second recogniser: `{cfg['second_asr_model']}`. GE2E = cosine to the conditioning reference "
        "(resemblyzer); GE2E others = mean cosine to the other speakers' references of the same kind, and "
        "GE2E ID = share of clones nearest to their own speaker's reference: similarity that is not "
        "specific to the speaker shows up there. Judge = the speaker judge (`vcfad judge`, models/judge: a "
        "verification network trained here on other speakers, used by no part of the cloner): cosine to the "
        "conditioning reference; Judge ID = share of clones nearest to their own speaker's reference under it. "
        "Pitch err = |median F0 of the clone − the reference's| in semitones (WORLD harvest); pace err = "
        "|articulation rate of the clone / the reference's − 1|, a rate being the syllables of the words (the "
        "clone's text; the recogniser's transcript of the reference's first 20 s) per second of phonation "
        "(webrtcvad, pauses of 0.3 s and more left out; `shared.voice_analysis`). "
        "RTF = synthesis seconds per second of speech on this machine, during the run "
        f"(enrollment excluded; mean enrollment: {report['enroll_s_mean']} s). "
        f"Total run time {report.get('elapsed_s')} s.{_stage_note(report.get('cloner_settings'))}",
        "",
        "| backend | reference | text | WER | WER (2nd ASR) | GE2E | GE2E min | GE2E others | GE2E ID | Judge "
        "| Judge ID | Pitch err (st) | Pace err | RTF | RTVC WER |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["cells"]:
        lines.append(
            f"| {row['backend']} | {row['reference']} | {row['text']} | {row['wer']:.3f} | "
            f"{row['wer_second_asr'] if row['wer_second_asr'] is not None else '–'} | {row['ge2e_similarity']:.3f} | "
            f"{row['ge2e_min']:.3f} | {row['ge2e_others']:.3f} | {row['ge2e_id_accuracy']:.2f} | "
            f"{row['judge_similarity']:.3f} | {row['judge_id_accuracy']:.2f} | "
            f"{row['pitch_error_st']:.2f} | {row['rate_error']:.3f} | {row['synthesis_rtf']:.2f} | {row['rtvc_wer']} |"
        )
    real = report["real"]
    lines += [
        "",
        "Real recordings (the ceiling/floor rows):",
        "",
        f"- GE2E cosine of a speaker's one utterance to their other utterances: {real['ge2e_short_vs_long_reference']}",
        f"- The judge's cosine of the same pairs: {real['judge_short_vs_long_reference']}",
        f"- The ASR's WER on the real recordings cannot be measured: these LibriSpeech clips have no transcripts. "
        f"The two recognisers disagree on them by {real['asr_disagreement_base_vs_second']} (WER of one against "
        "the other), a lower bound on their error there.",
        "",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


def _stage_note(settings: dict | None) -> str:
    """The cloner settings a reader needs to know which cloner the rows describe."""
    if not settings:
        return ""
    envelope = "on" if settings.get("envelope_fit") else "off"
    prosody = [name for name in ("pitch", "rate") if settings.get(f"{name}_fit")]
    return (
        f" Cloner: envelope stage {envelope}; style search {settings.get('fit_iterations', 0)} calls; "
        f"prosody fit: {' and '.join(prosody) if prosody else 'off'}."
    )


def compare_reports(before: dict, after: dict, resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Per backend row and measure: the mean change from ``before`` to ``after`` over the clones both
    made (same speaker, reference and text), with a 95 % bootstrap interval over speakers.

    Speakers are resampled, not clones: a speaker's four clones share a voice and move together.
    """
    keyed = {
        name: {(i["backend"], i["speaker"], i["reference"], i["text_kind"]): i for i in report["items"]}
        for name, report in (("before", before), ("after", after))
    }
    shared_keys = sorted(set(keyed["before"]) & set(keyed["after"]))
    measures = ("ge2e", "judge", "wer", "pitch_error_st", "rate_error")
    rng = np.random.default_rng(seed)
    rows = []
    for backend in dict.fromkeys(key[0] for key in shared_keys):
        for measure in measures:
            # The clones measured on both sides: a clone without a voiced frame, or a report written
            # before the prosody measures existed, leaves that measure out (the row counts its clones).
            keys = [
                key
                for key in shared_keys
                if key[0] == backend
                and all(not np.isnan(keyed[side][key].get(measure, np.nan)) for side in ("before", "after"))
            ]
            speakers = sorted({key[1] for key in keys})
            if not keys:
                continue
            differences = {
                speaker: [keyed["after"][k][measure] - keyed["before"][k][measure] for k in keys if k[1] == speaker]
                for speaker in speakers
            }
            change = {speaker: float(np.mean(values)) for speaker, values in differences.items()}
            values = np.array([change[s] for s in speakers])
            draws = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
            low, high = percentile_interval(draws)
            rows.append(
                {
                    "backend": backend,
                    "measure": measure,
                    "speakers": len(speakers),
                    "clones": len(keys),
                    "before": round(float(np.mean([keyed["before"][k][measure] for k in keys])), 4),
                    "after": round(float(np.mean([keyed["after"][k][measure] for k in keys])), 4),
                    "change": round(float(values.mean()), 4),
                    "interval_95": [round(low, 4), round(high, 4)],
                }
            )
    return rows
