"""A notification: what an alert says, whichever channel carries it.

Plain data shared by the evaluator that decides to notify (a later slice), the
renderers of each channel kind and the delivery log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

STATES = ("firing", "resolved")
# The kinds of notification channel (rules.channels checks each one's config).
CHANNEL_KINDS = ("webhook", "slack", "telegram", "discord", "email")
OUTCOMES = ("delivered", "failed")


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert's change of state on one endpoint (or a test, ``endpoint_id`` None)."""

    endpoint_id: int | None
    endpoint_name: str
    condition: str  # e.g. "silence"; "test" for a test notification
    state: str  # one of STATES
    sentence: str  # for people: "No postbacks for 2 h (expected every 30 min)."
    link: str  # the endpoint's page (or the channels page for a test)
    occurred_at: datetime

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state: one of {', '.join(STATES)}, not {self.state!r}")

    @property
    def is_test(self) -> bool:
        return self.condition == "test"

    @property
    def headline(self) -> str:
        """ "FIRING: silence on Binom main": the subject line and the log's summary."""
        if self.is_test:
            return "TEST: a test notification"
        return f"{self.state.upper()}: {self.condition} on {self.endpoint_name}"
