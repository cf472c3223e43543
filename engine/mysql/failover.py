"""Which replica to promote: the failover assessment, as a pure function of the servers' states.

orchestrator and MHA pick the most advanced replica; so do we, exactly: each candidate's
position is what it has *received* (executed plus its relay log, which it applies before it is
promoted), compared as GTID sets (``engine/mysql/gtid.py``), never by seconds of lag. The winner
is the candidate that lacks the fewest of the transactions any candidate has; a tie goes to the
higher ``failover_priority`` host variable, then to the inventory order.

A candidate is not eligible when it does not answer, writes no binary log (nobody could follow
it), does not log what it replicates (``log_slave_updates`` off: the others could not continue
from their positions) or its SQL thread has stopped on an error (its relay log cannot be
applied). An IO thread error is expected when the primary is down and is only shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.mysql.gtid import GtidState, missing_text
from engine.mysql.replication import ReplicationState


@dataclass
class Candidate:
    """One replica as the assessment saw it (``state`` None: it did not answer)."""

    host: str
    state: ReplicationState | None
    priority: int = 0
    error: str | None = None  # why it did not answer
    order: int = 0
    eligible: bool = False
    why: list[str] = field(default_factory=list)
    lacks: int = 0
    lacks_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        st = self.state
        link = st.link if st is not None else None
        return {
            "host": self.host, "answering": st is not None, "eligible": self.eligible, "why": "; ".join(self.why) or None,
            "priority": self.priority, "role": st.role if st else None,
            "gtid": st.executed if st else None, "received": str(st.received()) if st else None,
            "unapplied": st.unapplied() if st else None, "lacks": self.lacks, "lacks_gtids": self.lacks_text or None,
            "io_running": link.io_running if link else None, "sql_running": link.sql_running if link else None,
            "seconds_behind": link.seconds_behind if link else None, "last_error": (link.last_error if link else None) or self.error,
            "read_only": st.read_only if st else None, "log_bin": st.log_bin if st else None,
        }


@dataclass
class Assessment:
    """The ranked candidates (best first), the one chosen and what it lacks."""

    candidates: list[Candidate]
    chosen: str | None
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"candidates": [c.to_dict() for c in self.candidates], "chosen": self.chosen,
                "others": [c.host for c in self.candidates if c.host != self.chosen and c.state is not None]}


def _eligibility(c: Candidate) -> None:
    st = c.state
    if st is None:
        c.why.append(f"does not answer ({c.error or 'unreachable'})")
        return
    if not st.log_bin:
        c.why.append("writes no binary log: no replica could follow it")
    elif not st.log_replica_updates and st.link is not None:
        c.why.append("log_slave_updates is OFF: its binary log lacks what it replicated, the others could not follow it")
    if st.link is not None and st.link.sql_error:
        c.why.append(f"its SQL thread stopped on an error ({st.link.sql_error}): its relay log cannot be applied")
    c.eligible = not c.why


def assess(candidates: list[Candidate]) -> Assessment:
    """Rank the candidates; the first eligible one is chosen (None when none is)."""
    for i, c in enumerate(candidates):
        c.order = i
        _eligibility(c)
    able = [c for c in candidates if c.eligible and c.state is not None]
    warnings: list[str] = []
    union: GtidState | None = None
    for c in able:
        pos = c.state.received()  # type: ignore[union-attr]
        union = pos if union is None else union.union(pos)
    for c in able:
        if union is not None:
            gap = c.state.received().missing(union)  # type: ignore[union-attr]
            c.lacks = sum(r.count for r in gap)
            c.lacks_text = missing_text(gap) if gap else ""
    ranked = sorted(candidates, key=lambda c: (not c.eligible, c.lacks, -c.priority, c.order))
    chosen = ranked[0].host if ranked and ranked[0].eligible else None
    if chosen is not None and ranked[0].lacks:
        warnings.append(f"{chosen} is the most advanced candidate but lacks {ranked[0].lacks_text} that another "
                        "candidate received: those replicas will not follow it until the gap is resolved")
    for c in ranked:
        if c.state is not None and not c.eligible:
            warnings.append(f"{c.host} is not eligible: {'; '.join(c.why)}")
    return Assessment(ranked, chosen, warnings)
