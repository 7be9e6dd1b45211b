"""Processor steps the live tests run in the agent's worker processes (by import path)."""

from __future__ import annotations


def gate(payload: dict) -> str:
    """Block until the test writes to the FIFO ``payload["fifo"]``; return what it wrote.

    Lets a test hold a task in flight for exactly as long as it needs, with no timing.
    """
    with open(payload["fifo"], encoding="utf-8") as f:
        return f.read()


def shout(payload: str) -> str:
    print("this goes to stderr, not into the reply")
    return payload.upper()


def echo_payload(payload):
    """Return the payload unchanged (a processor worker's output, checked against its schema)."""
    return payload
