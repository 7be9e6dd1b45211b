"""Importers: the real Azure traces, BurstGPT, generic CSV mappings, and bad-row accounting."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.traces import TraceValidationError
from heddle.traces.importers import (
    BURSTGPT_MODELS,
    CsvMapping,
    ImportDefaults,
    import_azure,
    import_burstgpt,
    import_csv,
)
from tests.traces.conftest import SHARED_TRACES

CONV = SHARED_TRACES / "azure_llm_2023_conv.csv"
CODE = SHARED_TRACES / "azure_llm_2023_code.csv"


@pytest.mark.parametrize("path", [CONV, CODE], ids=["conv", "code"])
def test_azure_import_keeps_every_request_and_token(path: Path):
    raw = pd.read_csv(path)
    result = import_azure(path)
    df = result.trace.df
    # conv: the file has 19,366 data rows (its last row has no trailing newline, so
    # `wc -l` shows 19,366 lines including the header); every one of them is a request
    assert len(df) == len(raw)
    assert result.report.rows_read == result.report.rows_kept == len(raw)
    assert df["prompt_tokens"].sum() == raw["ContextTokens"].sum()
    assert df["output_tokens"].sum() == raw["GeneratedTokens"].sum()
    stamps = pd.to_datetime(raw["TIMESTAMP"])
    span = (stamps.max() - stamps.min()).total_seconds()
    assert df["arrival_s"].iloc[0] == 0.0
    assert df["arrival_s"].iloc[-1] == pytest.approx(span, abs=1e-3)
    assert set(df["privacy"]) == {"public"} and set(df["model"]) == {"llama-3.1-8b"}
    assert "CC-BY 4.0" in result.trace.meta["attribution"]


def test_conv_trace_has_19366_requests():
    assert len(import_azure(CONV).trace) == 19_366


def test_import_defaults_fill_missing_fields():
    defaults = ImportDefaults(model="qwen2.5-32b", privacy="sensitive", owner="ops",
                              deadline_s=30.0, task_id_prefix="conv-")
    df = import_azure(CODE, defaults=defaults).trace.df
    assert set(df["model"]) == {"qwen2.5-32b"}
    assert set(df["privacy"]) == {"sensitive"} and set(df["owner"]) == {"ops"}
    assert (df["deadline_s"] == 30.0).all()
    assert df["task_id"].iloc[0] == "conv-2"  # line 2: the first data row


BAD_AZURE = (
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:15:46.6805900,374,44\n"   # line 2 ok
    "2023-11-16 18:15:47,lots,44\n"          # line 3 bad ContextTokens
    "2023-11-16 18:15:48,3,-1\n"             # line 4 bad GeneratedTokens
    "2023-11-16 18:15:49,3\n"                # line 5 wrong field count
    "yesterday,1,1\n"                        # line 6 bad TIMESTAMP
    "\n"                                     # line 7 blank: not a request
    '"2023-11-16 18:15:50",5,5\n'            # line 8 ok
    "2023-11-16 18:15:51,2.5,5\n"            # line 9 bad ContextTokens (not an integer)
)


def test_first_bad_row_is_named_by_line_and_column(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_AZURE)
    with pytest.raises(TraceValidationError) as info:
        import_azure(path)
    assert info.value.line == 3 and info.value.column == "ContextTokens"
    assert "line 3, column 'ContextTokens'" in str(info.value) and "'lots'" in str(info.value)


def test_skip_bad_counts_every_skipped_row_by_reason(tmp_path: Path):
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(BAD_AZURE.encode()))
    result = import_azure(path, skip_bad=True)
    report = result.report
    assert len(result.trace) == 2 == report.rows_kept
    assert report.rows_read == 7 == report.rows_kept + report.rows_skipped
    by_line = {line: reason for reason, lines in report.example_lines.items() for line in lines}
    assert sorted(by_line) == [3, 4, 5, 6, 9]
    assert "ContextTokens" in by_line[3] and "ContextTokens" in by_line[9]
    assert "GeneratedTokens" in by_line[4] and "fields" in by_line[5]
    assert "TIMESTAMP" in by_line[6]
    assert sorted(result.trace.df["task_id"]) == ["r2", "r8"]


def test_missing_header_column_is_named(tmp_path: Path):
    path = tmp_path / "h.csv"
    path.write_text("TIMESTAMP,Context,GeneratedTokens\n2023-11-16 18:15:46,1,1\n")
    with pytest.raises(TraceValidationError, match="ContextTokens") as info:
        import_azure(path)
    assert info.value.line == 1


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(-5, 10**6), st.integers(-5, 10**5),
                               st.booleans()), max_size=40))
def test_rows_read_always_equal_kept_plus_skipped(tmp_path_factory, rows):
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for i, (ctx, gen, garble) in enumerate(rows):
        stamp = "garbage" if garble else f"2023-11-16 18:{i // 60:02d}:{i % 60:02d}"
        lines.append(f"{stamp},{ctx},{gen}")
    path = tmp_path_factory.mktemp("p") / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    result = import_azure(path, skip_bad=True)
    good = [r for r in rows if r[0] >= 0 and r[1] >= 0 and not r[2]]
    assert result.report.rows_read == len(rows)
    assert result.report.rows_kept == len(good) == len(result.trace)
    assert result.report.rows_skipped == len(rows) - len(good)
    assert result.trace.df["prompt_tokens"].sum() == sum(r[0] for r in good)


BURST = (
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "5,ChatGPT,472,18,490,Conversation log\n"
    "45,GPT-4,1087,0,1087,API log\n"
    "7,ChatGPT,100,20,120,API log\n"
    "9,Claude,100,20,120,API log\n"
)


def test_burstgpt_maps_models_and_log_types(tmp_path: Path):
    path = tmp_path / "burst.csv"
    path.write_text(BURST)
    with pytest.raises(TraceValidationError) as info:
        import_burstgpt(path)
    assert info.value.line == 5 and info.value.column == "Model"
    result = import_burstgpt(path, skip_bad=True)
    df = result.trace.df
    assert result.report.rows_skipped == 1
    assert list(df["arrival_s"]) == [0.0, 2.0, 40.0]  # relative to the earliest, sorted
    gpt4 = df[df["task_id"] == "r3"].iloc[0]
    assert gpt4["model"] == BURSTGPT_MODELS["GPT-4"].model and gpt4["tier"] == "frontier"
    assert gpt4["output_tokens"] == 0 and gpt4["account"] == "api"
    chat = df[df["task_id"] == "r2"].iloc[0]
    assert chat["account"] == "chat" and chat["priority"] == 1


def test_generic_csv_mapping_with_units_and_defaults(tmp_path: Path):
    path = tmp_path / "mine.csv"
    path.write_text(
        'when_ms,input,output,who,data class,note\n'
        '1500,10,5,alice,personal,"a, ""quoted"" note"\n'
        '500,20,6,bob,public,\n'
    )
    mapping = CsvMapping(
        columns={"arrival_s": "when_ms", "prompt_tokens": "input", "output_tokens": "output",
                 "owner": "who", "privacy": "data class", "stage": "note"},
        defaults=ImportDefaults(model="qwen2.5-7b"), time_unit_s=0.001,
    )
    df = import_csv(path, mapping).trace.df
    assert list(df["arrival_s"]) == [0.0, 1.0]
    assert list(df["owner"]) == ["bob", "alice"]
    assert df["stage"].iloc[1] == 'a, "quoted" note'
    assert set(df["model"]) == {"qwen2.5-7b"}
    path.write_text("when_ms,input,output,who,data class,note\n1,1,1,x,secret,\n")
    with pytest.raises(TraceValidationError) as info:
        import_csv(path, mapping)
    assert (info.value.line, info.value.column) == (2, "data class")


def test_mapping_must_name_known_fields_and_the_arrival_column():
    with pytest.raises(ValueError, match="unknown schema field"):
        CsvMapping(columns={"arrival_s": "t", "tokens": "x"})
    with pytest.raises(ValueError, match="arrival_s"):
        CsvMapping(columns={"prompt_tokens": "x"})


def test_timestamps_become_seconds_with_subsecond_precision(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:46.6805900,1,1\n2023-11-16 18:15:47.0000000,1,1\n")
    arrival = import_azure(path).trace.df["arrival_s"].to_numpy()
    assert np.allclose(arrival, [0.0, 0.31941], atol=1e-6)


def test_reading_zstd_needs_zstandard_or_works(tmp_path: Path):
    from heddle.traces import Trace, TraceFormatError, read_trace, write_trace

    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(TraceFormatError, match="zstandard"):
            write_trace(Trace.empty(), tmp_path / "t.htr.zst")
        assert list(tmp_path.iterdir()) == []
        fake = tmp_path / "z.htr"
        fake.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
        with pytest.raises(TraceFormatError, match="zstandard"):
            read_trace(fake)
    else:
        write_trace(Trace.empty({"a": "b"}), tmp_path / "t.htr.zst")
        assert read_trace(tmp_path / "t.htr.zst").meta == {"a": "b"}


def test_spaces_around_values_are_tolerated(tmp_path: Path):
    path = tmp_path / "spaced.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    " 3 , GPT-4 , 12 ,  4,16, API log \n")
    df = import_burstgpt(path).trace.df
    assert (df["prompt_tokens"].iloc[0], df["output_tokens"].iloc[0]) == (12, 4)
    assert df["tier"].iloc[0] == "frontier" and df["account"].iloc[0] == "api"
