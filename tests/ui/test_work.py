"""A task's life as the Work page tells it, from events shaped as the control plane records
them (the browser test reads a real cluster's JetStream log)."""

from __future__ import annotations

from heddle.events import EventEnvelope
from heddle.ui import work


def event(kind: str, version: int, at: float, by: str, **payload) -> EventEnvelope:
    return EventEnvelope(event_id=f"e{version}", event_type=kind, aggregate_type="Task", aggregate_id="job-t0",
                         aggregate_version=version, payload=payload, metadata={"issued_by": by},
                         occurred_at_unix_s=at)


def test_a_tasks_story_in_plain_words():
    events = [
        event("TaskSubmitted", 1, 100.0, "user:system:cli:dana", job_id="job", model="llama", owner="dana",
              privacy="personal", spec={"task": {"kind": "llm", "model": "llama-3.1-8b", "quant": "q4_k_m",
                                                 "prompt_tokens": 512, "output_tokens": 128, "privacy": "personal",
                                                 "owner": "dana", "deadline_s": 30.0},
                                        "executor": {"kind": "ollama"}}),
        event("TaskPlaced", 2, 100.5, "framework:scheduler", target="mini", attempt=1, est_seconds=2.5,
              reason="cheapest node with the model loaded", predicted_finish=1796567335.0),
        event("TaskFailed", 3, 101.0, "framework:scheduler", reason="node mini lost", retryable=True),
        event("TaskPlaced", 4, 101.5, "framework:scheduler", target="air", attempt=2, est_seconds=3.0),
        event("TaskStarted", 5, 101.6, "bridge:ollama", node="air", attempt=2),
        event("TaskCompleted", 6, 104.8, "bridge:ollama", node="air", tokens_done=128,
              timings={"queued_at": 101.5, "received_at": 101.55, "started_at": 101.6, "finished_at": 104.8}),
    ]
    story = work.story("job-t0", events)
    assert [e["what"] for e in story["events"]] == [
        "submitted by dana (personal work)", "placed on mini (attempt 1)",
        "failed, will be tried again: node mini lost", "placed on air (attempt 2)", "started on air",
        "completed on air"]
    assert story["events"][1]["who"] == "framework:scheduler"
    assert story["events"][5]["details"] == {"tokens_done": 128}
    assert story["facts"]["model"] == "llama-3.1-8b (q4_k_m)" and story["facts"]["runs as"] == "ollama"
    assert story["facts"]["privacy"] == "personal, dana's"
    assert story["why"] == ["mini: cheapest node with the model loaded"]
    assert story["predicted"]["run time"] == "3.00 s"  # the attempt that ran
    assert story["actual"] == {"run time": "3.20 s", "waited at the node": "50.0 ms"}
    assert "predicted finish" in story["predicted"]  # a shadow prediction, shown as a clock time
