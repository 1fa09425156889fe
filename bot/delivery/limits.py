"""The sender's limits and timings, and the pacing arithmetic made from them (pure)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Protocol


class SenderSettings(Protocol):
    """What the sender reads from bot.config.Settings."""

    send_rate: float
    paid_broadcast: bool
    paid_send_rate: float
    send_lease: float


@dataclass(frozen=True)
class DeliveryLimits:
    """The sender's limits and timings; defaults are Telegram's, tests shrink them."""

    send_rate: float = 25.0  # messages per second for the whole deployment, all chats together
    private_interval: float = 1.0  # seconds between two messages to one chat
    group_per_minute: int = 20  # messages a minute to one group, supergroup or channel
    # seconds a claim is held unless renewed; the sender renews its claims every lease/4, so
    # a sender killed with SIGKILL gives them back within one lease
    lease: float = 20.0
    backoff_base: float = 2.0  # first retry after a transient error, doubled each time
    backoff_cap: float = 600.0
    max_attempts: int = 8  # transient failures before the message is marked failed
    concurrency: int = 0  # parallel requests; 0: from the rate (a quarter second's worth)
    batch_size: int = 0  # messages per claim; 0: from the rate (half a second's worth)
    lanes: int = -1  # connection pools of our own; -1: one per 2 workers, at most 8; 0: none
    flush_interval: float = 0.05  # seconds the writer gathers outcomes before writing them
    idle_poll: float = 2.0  # seconds between looks at the queue when nothing is due
    # seconds to wait for Telegram's answer to a send (PTB's 5 s is too short under load: a
    # late answer to a delivered message looked like a failure, and the retry was a duplicate)
    send_timeout: float = 25.0
    paid_broadcast: bool = False  # broadcasts with allow_paid_broadcast, at paid_send_rate
    paid_send_rate: float = 1000.0
    # seconds of the shared rate taken from the database at once (not a query per message)
    rate_grant: float = 0.25

    @classmethod
    def from_settings(cls, settings: SenderSettings, **overrides: Any) -> DeliveryLimits:
        values: dict[str, Any] = {
            "send_rate": float(settings.send_rate),
            "paid_broadcast": settings.paid_broadcast,
            "paid_send_rate": float(settings.paid_send_rate),
            "lease": float(settings.send_lease),
        }
        values.update(overrides)
        return cls(**values)

    @property
    def top_rate(self) -> float:
        """The fastest this sender may go: the paid rate when paid broadcasts are on."""
        return max(self.send_rate, self.paid_send_rate if self.paid_broadcast else 0.0)

    @property
    def group_interval(self) -> float:
        return max(self.private_interval, 60.0 / self.group_per_minute)

    @property
    def heartbeat(self) -> float:
        """Seconds between renewals of this sender's claims."""
        return self.lease / 4

    @property
    def workers(self) -> int:
        return self.concurrency or max(4, min(64, math.ceil(self.top_rate * 0.25)))

    @property
    def lane_count(self) -> int:
        return min(8, math.ceil(self.workers / 2)) if self.lanes < 0 else self.lanes

    @property
    def claim_size(self) -> int:
        return self.batch_size or max(1, min(500, math.ceil(self.top_rate * 0.5)))

    def backoff(self, attempts: int) -> float:
        """Seconds before retry number `attempts` (1-based): base·2^(n-1), capped, jittered."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempts - 1))
        return float(delay * random.uniform(0.5, 1.0))


__all__ = ["DeliveryLimits", "SenderSettings"]
