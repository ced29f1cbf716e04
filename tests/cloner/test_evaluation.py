"""eval-clone helpers: text selection and the report (the heavy run itself is `vcfad eval-clone`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from services.cloner.config import ClonerSettings
from services.cloner.evaluation import CELLS, EvalConfig, Item, compare_reports, pick_texts, summarise, write_report


def test_texts_are_distinct_sentences(shared_data_dir: Path) -> None:
    speakers = [f"s{i}" for i in range(10)]
    texts = pick_texts(shared_data_dir / "text" / "vctk_transcripts.csv", speakers, sentences=4, seed=0)
    assert set(texts) == set(speakers)
    shorts = [short for short, _ in texts.values()]
    assert len(set(shorts)) == 10
    for short, long in texts.values():
        assert short[-1] in ".?!" and 6 <= len(short.split()) <= 18
        assert sum(long.count(p) for p in ".?!") >= 4 and short not in long
    assert texts == pick_texts(shared_data_dir / "text" / "vctk_transcripts.csv", speakers, sentences=4, seed=0)


def test_report_tables(tmp_path: Path) -> None:
    items = []
    for ref, text_kind in CELLS:
        for speaker, (hyp, hyp2) in {"a": ("one two three", "one two three"), "b": ("one too three", "one")}.items():
            items.append(
                Item("demo", speaker, ref, text_kind, "one two three", "x.wav", 2.0, 1.0, 3.0,
                     transcript=hyp, transcript_2=hyp2, ge2e=0.7, judge=0.2, judge_identified=speaker == "a",
                     pitch_error_st=1.0 if speaker == "a" else 2.0)
            )  # fmt: skip
    config = EvalConfig(backends=("demo",), speakers=2, output_stem=tmp_path / "eval")
    report = summarise(items, config, ["a", "b"], [0.9, 0.8], [0.3, 0.2], 0.05)
    assert len(report["cells"]) == 4
    row = report["cells"][0]
    assert row["wer"] == round(1 / 6, 4) and row["wer_second_asr"] == round(2 / 6, 4)
    assert row["judge_id_accuracy"] == 0.5 and row["synthesis_rtf"] == 0.5
    assert row["pitch_error_st"] == 1.5 and np.isnan(row["rate_error"])  # no rate measured: none claimed
    write_report(report, config.output_stem)
    assert json.loads((tmp_path / "eval.json").read_text())["real"]["ge2e_short_vs_long_reference"] == 0.85
    markdown = (tmp_path / "eval.md").read_text()
    assert "| demo | short-ref | short-text | 0.167 |" in markdown
    assert "Cloner:" not in markdown, "no settings recorded, none claimed"
    # The report names the cloner it measured (run_evaluation records the settings it ran with).
    report["cloner_settings"] = ClonerSettings(envelope_fit=True, fit_iterations=24).model_dump(mode="json")
    write_report(report, config.output_stem)
    markdown = (tmp_path / "eval.md").read_text()
    assert "Cloner: envelope stage on; style search 24 calls; prosody fit: pitch." in markdown
    for fits, named in (({"pitch_fit": False}, "off"), ({"rate_fit": True}, "pitch and rate")):
        report["cloner_settings"] = ClonerSettings(**fits).model_dump(mode="json")
        write_report(report, config.output_stem)
        assert f"prosody fit: {named}." in (tmp_path / "eval.md").read_text()


def test_compare_reports_resamples_speakers() -> None:
    def report(judge_of: dict[str, float]) -> dict:
        items = [
            Item("demo", speaker, ref, text_kind, "one two", "x.wav", 2.0, 1.0, judge=judge, ge2e=0.7, wer=0.0)
            for speaker, judge in judge_of.items()
            for ref, text_kind in CELLS
        ]
        return {"items": [asdict(item) for item in items]}

    before = report({"a": 0.2, "b": 0.3, "c": 0.4})
    rows = {row["measure"]: row for row in compare_reports(before, report({"a": 0.3, "b": 0.3, "c": 0.6}))}
    judge = rows["judge"]
    assert judge["speakers"] == 3 and judge["clones"] == 12
    assert judge["change"] == 0.1 and judge["interval_95"][0] >= 0.0 and judge["interval_95"][1] <= 0.2 + 1e-9
    assert rows["ge2e"]["change"] == 0.0 and rows["ge2e"]["interval_95"] == [0.0, 0.0]
    assert "pitch_error_st" not in rows, "a measure no clone has is not compared"
    assert compare_reports(before, {"items": []}) == []
