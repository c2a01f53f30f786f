"""Restart backoff for a queue list whose workers keep dying soon after they start.

resque-pool respawns a crashing worker in a hot loop (issues #72, #108); resqued waits
1 s doubling to 16 s. Here, per queue list:

- a worker that lived at least ``healthy_after`` seconds and then died is replaced at once,
  and clears the list's backoff;
- the first quick death is also replaced at once (a single crash is not a pattern);
- each further quick death doubles the wait before the next spawn: 1, 2, 4, 8, 16, 16 s...
  Deaths of workers that were already running at the last quick death belong to the same
  wave (a Redis outage takes down every worker of a list at once) and do not double it
  again, so the wait grows per wave, as resqued's does per listener;
- a worker of the list started after the last quick death that has been alive
  ``healthy_after`` seconds clears the backoff too (a long-lived sibling does not: it says
  nothing about whether new workers of the list can boot).

Exits the manager asked for (QUIT on a count drop, HUP, shutdown) never count.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_DELAY = 1.0
MAX_DELAY = 16.0
HEALTHY_AFTER = 10.0


@dataclass
class Backoff:
    min_delay: float = MIN_DELAY
    max_delay: float = MAX_DELAY
    healthy_after: float = HEALTHY_AFTER
    quick_deaths: int = 0
    delay: float = 0.0
    not_before: float = 0.0
    last_death: float = 0.0

    def died(self, lifetime: float, now: float) -> None:
        """Record an unrequested exit of a worker that lived ``lifetime`` seconds."""
        if lifetime >= self.healthy_after:
            self.clear()
            return
        if self.quick_deaths and now - lifetime < self.last_death:
            return  # started before the last quick death: the same wave, already counted
        self.quick_deaths += 1
        self.last_death = now
        if self.quick_deaths == 1:
            self.delay = 0.0
        elif self.delay == 0.0:
            self.delay = self.min_delay
        else:
            self.delay = min(self.delay * 2, self.max_delay)
        self.not_before = now + self.delay

    def survived(self, started: float, now: float) -> None:
        """A worker of this list, started at ``started``, is alive at ``now``."""
        if self.quick_deaths and started >= self.last_death and now - started >= self.healthy_after:
            self.clear()

    def clear(self) -> None:
        self.quick_deaths = 0
        self.delay = 0.0
        self.not_before = 0.0
        self.last_death = 0.0

    def wait(self, now: float) -> float:
        """Seconds until this list may spawn again (0 when it may now)."""
        return max(self.not_before - now, 0.0)
