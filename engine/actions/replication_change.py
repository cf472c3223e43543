"""The changing states of ``replication``: each a probe (done?, what it would do) and an apply
that journals the previous state first (write-ahead), then changes, then waits until the server
shows it; and ``revert``, the undo back to a recorded state."""

from __future__ import annotations

from typing import Any

from engine.actions.replication_step import ReplicationStep, note_previous, secret, set_threads, threads_of, wait_until
from engine.errors import ActionError, RunbookError
from engine.model import Status, StepResult
from engine.mysql.fence import FenceState, set_fence_state
from engine.mysql.gtid import missing_text
from engine.mysql.replication import ReplicationState



# -- caught_up ----------------------------------------------------------------------------------
def _source_target(a: ReplicationStep) -> tuple[str | None, Any, str | None]:
    """(source, what it has written, why it does not answer): (None, None, None) without a source."""
    src = (a.args or {}).get("source")
    if not src:
        return None, None, None
    try:
        return src, a.peers().read(src).gtids(), None
    except RunbookError as exc:
        return src, None, exc.message


def _behind(st: ReplicationState, target: Any) -> list[Any]:
    ranges = st.gtids().missing(st.received())
    if target is not None:
        ranges = st.gtids().missing(st.received().union(target))
    return ranges


def probe_caught_up(a: ReplicationStep, st: ReplicationState) -> tuple[bool, str] | None:
    if st.link is None:
        return True, ""  # a primary has nothing to catch up with
    src, target, down = _source_target(a)
    if src is not None and down is not None:
        from engine.actions import replication_catchup

        return replication_catchup.probe(a, st, src)
    behind = _behind(st, target)
    if not behind:
        return True, ""
    would = f"wait until it has applied {missing_text(behind)}"
    starts = [t for t, on in threads_of(st).items() if not on and (t == "sql" or target is not None)]
    threads = " and ".join(t.upper() for t in starts) + (" threads" if len(starts) > 1 else " thread")
    return False, would + (f" (start the {threads})" if starts else "")


def apply_caught_up(a: ReplicationStep) -> StepResult:
    st = a.read()
    if st.link is None:
        return StepResult(Status.OK, msg="not a replica: nothing to catch up with", data=a._data(st))
    src, target, down = _source_target(a)
    if src is not None and down is not None:
        # MHA's promise: what only the dead source has, from its binlog files.
        from engine.actions import replication_catchup

        return replication_catchup.apply(a, src, down)
    limit = a._timeout("5m")
    before = _behind(st, target)
    undo = None
    threads = threads_of(st)
    want_io = threads["io"] or target is not None  # a source's writes arrive through the IO thread
    if not (threads["sql"] and threads["io"] == want_io):
        undo = note_previous(a, st)
        set_threads(a, st, want_io or threads["io"], True)

    def failing(s: ReplicationState) -> str | None:
        if s.link is not None and s.link.sql_error:
            return f"the SQL thread stopped: {s.link.sql_error}"
        return None

    what = f"{a.ctx.host.name} to apply {missing_text(before)}"
    try:
        done = wait_until(a, what, limit, lambda s: not _behind(s, target), failing)
    except ActionError as exc:
        exc.message += f"; still to apply: {missing_text(_behind(a.read(), target))}"
        raise ActionError(exc.message, hint=exc.hint) from None
    n = sum(r.count for r in before)
    data = a._data(done, applied=n, caught_up_with=src)
    msg = f"caught up{f' with {src}' if src else ''}: applied {n} transaction(s), gtid {done.executed}"
    return StepResult(Status.CHANGED if n or undo else Status.OK, msg=msg, data=data, undo=undo)


# -- stopped / started --------------------------------------------------------------------------
def _want(a: ReplicationStep, st: ReplicationState, on: bool) -> dict[str, bool]:
    io, sql = a._threads()
    now = threads_of(st)
    return {"io": on if io else now["io"], "sql": on if sql else now["sql"]}


def probe_stopped(a: ReplicationStep, st: ReplicationState) -> tuple[bool, str]:
    if st.link is None:
        return True, ""
    want = _want(a, st, False)
    return want == threads_of(st), "stop " + " and ".join(t.upper() for t, on in threads_of(st).items() if on and not want[t]) + " thread"


def probe_started(a: ReplicationStep, st: ReplicationState) -> tuple[bool, str]:
    if st.link is None:
        raise ActionError(f"{a.ctx.host.name} is not a replica: no source to start replicating from",
                          hint="replication: {state: following, source: <host>}")
    want = _want(a, st, True)
    return want == threads_of(st), "start " + " and ".join(t.upper() for t, on in threads_of(st).items() if not on and want[t]) + " thread"


def _switch(a: ReplicationStep, on: bool) -> StepResult:
    st = a.read()
    want = _want(a, st, on)
    if st.link is None or want == threads_of(st):
        return StepResult(Status.OK, msg="nothing to do", data=a._data(st))
    undo = note_previous(a, st)
    set_threads(a, st, want["io"], want["sql"])
    done = wait_until(a, f"the threads to {'start' if on else 'stop'}", 30, lambda s: threads_of(s) == want)
    return StepResult(Status.CHANGED, msg=f"IO {done.link.io_running if done.link else '-'}, SQL {done.link.sql_running if done.link else '-'}",
                      data=a._data(done), undo=undo)


def apply_stopped(a: ReplicationStep) -> StepResult:
    return _switch(a, False)


def apply_started(a: ReplicationStep) -> StepResult:
    return _switch(a, True)


# -- following ----------------------------------------------------------------------------------
def _follow_target(a: ReplicationStep) -> tuple[str, str, int]:
    src = str(a.args["source"])
    if src == a.ctx.host.name:
        raise ActionError(f"{src} cannot follow itself", hint="source: another inventory host")
    host, port = a.peers().address(src)
    return src, host, port


def _same_address(h1: str | None, p1: int | None, h2: str, p2: int) -> bool:
    loop = ("127.0.0.1", "localhost", "::1")
    return p1 == p2 and (h1 == h2 or (h1 in loop and h2 in loop))


def _follows(st: ReplicationState, host: str, port: int) -> bool:
    link = st.link
    return link is not None and _same_address(link.source_host, link.source_port, host, port) and link.uses_gtid


def probe_following(a: ReplicationStep, st: ReplicationState) -> tuple[bool, str]:
    src, host, port = _follow_target(a)
    ro = (a.args or {}).get("read_only", True)
    points = _follows(st, host, port)
    running = points and st.link is not None and st.link.io_running == "Yes" and st.link.sql
    done = bool(running) and (not ro or st.read_only)
    would = [] if points else [f"CHANGE MASTER TO {src} ({host}:{port}, GTID)"]
    if not running:
        would.append("start replicating")
    if ro and not st.read_only:
        would.insert(0, "read_only ON")
    return done, ", ".join(would)


def apply_following(a: ReplicationStep) -> StepResult:
    args = a.args or {}
    src, host, port = _follow_target(a)
    st = a.read()
    try:
        source = a.peers().read(src)
    except RunbookError as exc:
        raise ActionError(f"{src} does not answer ({exc.message}): cannot check that it has everything "
                          f"{a.ctx.host.name} has", hint="follow a source that answers") from None
    if source.flavor != st.flavor:
        raise ActionError(f"{a.ctx.host.name} is {st.flavor} and {src} is {source.flavor}: GTIDs do not mix")
    extra = source.gtids().missing(st.gtids())
    clash = st.gtids().diverged(source.gtids())
    if extra or clash:
        # GitHub 2018: never replicate across diverged GTID sets.
        raise ActionError(f"{a.ctx.host.name} has transactions {src} lacks ({missing_text(extra) if extra else '; '.join(clash)}): "
                          "it would diverge", hint=f"find out what they are (they were never on {src}); re-clone "
                          f"{a.ctx.host.name} from {src}, or apply them on {src} first")
    if not source.log_bin:
        raise ActionError(f"{src} writes no binary log: nothing can replicate from it")
    if not st.dialect.mariadb and (st.gtid_mode or "").upper() != "ON":
        raise ActionError(f"gtid_mode is {st.gtid_mode} on {a.ctx.host.name}: GTID auto-positioning needs gtid_mode=ON")
    user = args.get("user") or a.peers().var(a.ctx.host.name, "replication_user")
    password = secret(args["password"] if "password" in args else a.peers().var(a.ctx.host.name, "replication_password"))
    if not user:
        raise ActionError("no replication account: set replication_user/replication_password in the inventory, or user:/password:")
    undo = note_previous(a, st)
    sess, d = a.ctx.sql(), st.dialect
    if args.get("read_only", True) and not st.read_only:
        set_fence_state(sess, FenceState(True, True))  # no write may land between now and the first replicated one
    if st.link is not None and (st.link.io or st.link.sql):
        sess.query(d.threads("STOP"))
    if d.mariadb and st.slave_pos != st.executed and st.executed:
        # It wrote transactions itself (a former primary, a catch-up): replicate after them.
        sess.query("SET GLOBAL gtid_slave_pos = %s", [st.executed])
    params: list[Any] = [host, port, str(user)] + ([password.reveal()] if password is not None else [])
    sess.query(d.change_source(host, port, str(user), password is not None), params)
    sess.query(d.threads("START"))

    def failing(s: ReplicationState) -> str | None:
        return s.link.last_error if s.link is not None and s.link.io_running != "Yes" and s.link.last_error else None

    limit = a._timeout("1m")
    try:
        done = wait_until(a, f"{a.ctx.host.name} to connect to {src} ({host}:{port})", limit,
                          lambda s: s.link is not None and s.link.io_running == "Yes" and s.link.sql, failing)
    except ActionError as exc:
        return StepResult(Status.FAILED, msg=exc.message, data=a._data(a.read()), undo=undo)
    behind = done.gtids().missing(source.gtids())
    msg = f"following {src} ({host}:{port}, GTID from {done.executed or 'the start'})"
    if behind:
        msg += f"; {missing_text(behind)} to fetch and apply"
    return StepResult(Status.CHANGED, msg=msg, data=a._data(done), undo=undo)


# -- promoted -----------------------------------------------------------------------------------
def probe_promoted(a: ReplicationStep, st: ReplicationState) -> tuple[bool, str]:
    would = []
    if st.link is not None:
        would.append(f"stop replicating from {st.link.source_host}:{st.link.source_port} and forget it")
    if st.read_only or st.super_read_only:
        would.append("read_only OFF")
    return not would, ", ".join(would)


def apply_promoted(a: ReplicationStep) -> StepResult:
    st = a.read()
    warnings = []
    sess, d = a.ctx.sql(), st.dialect
    if st.link is not None:
        left = st.unapplied()
        if left and not (a.args or {}).get("discard_unapplied"):
            raise ActionError(f"{a.ctx.host.name} has received {left} transaction(s) it has not applied yet "
                              f"({missing_text(st.gtids().missing(st.received()))}): promoting now would lose them",
                              hint="wait first (replication: {state: caught_up}), or discard_unapplied: true")
        if st.link.io or st.link.sql:
            sess.query(d.threads("STOP"))
        sess.query(d.reset_all())
    if not st.log_bin:
        warnings.append("it writes no binary log: no replica can follow it")
    set_fence_state(sess, FenceState(False, False))
    done = a.read()
    data = a._data(done, previous_source=None if st.link is None else f"{st.link.source_host}:{st.link.source_port}")
    return StepResult(Status.CHANGED, msg=f"promoted: a primary, writable, gtid {done.executed or '-'} (not undone by rollback)",
                      data=data, warnings=warnings)


# -- undo ---------------------------------------------------------------------------------------
def revert(a: ReplicationStep, record: Any) -> StepResult:
    """Back to the recorded replication state: source, threads, read_only."""
    if not isinstance(record, dict) or record.get("revert") != "replication":
        raise ActionError("not an undo record of the replication action")
    st = a.read()
    sess, d = a.ctx.sql(), st.dialect
    link = record.get("link")
    changed = []
    now = st.link
    same = link is not None and now is not None and _same_address(now.source_host, now.source_port, str(link.get("host")), int(link["port"]))
    if link is None and now is not None:
        if now.io or now.sql:
            sess.query(d.threads("STOP"))
        sess.query(d.reset_all())
        changed.append("forgot the source")
    elif link is not None and not same:
        if now is not None and (now.io or now.sql):
            sess.query(d.threads("STOP"))
        user = link.get("user") if now is None or now.source_user != link.get("user") else None
        password = None
        if user is not None:
            # The journal never holds a password: only the inventory's account can be given back.
            if user != a.peers().var(a.ctx.host.name, "replication_user"):
                raise ActionError(f"the previous source {link['host']}:{link['port']} was reached as {user}, whose password "
                                  "is not journaled (secrets never are)", hint=f"CHANGE MASTER TO MASTER_HOST='{link['host']}', "
                                  f"MASTER_PORT={link['port']}, MASTER_USER='{user}', MASTER_PASSWORD=… by hand")
            password = secret(a.peers().var(a.ctx.host.name, "replication_password"))
        classic = not link.get("gtid") and link.get("file")
        stmt = d.change_source(str(link["host"]), int(link["port"]), user, password is not None, gtid=bool(link.get("gtid")),
                               log_pos=int(link.get("pos") or 4) if classic else None)
        params: list[Any] = [link["host"], int(link["port"])] + ([user] if user else []) + ([password.reveal()] if password else [])
        sess.query(stmt, params + ([link["file"]] if classic else []))
        changed.append(f"source back to {link['host']}:{link['port']}")
    st = a.read()
    want = record.get("threads") or {}
    if st.link is not None and threads_of(st) != {"io": bool(want.get("io")), "sql": bool(want.get("sql"))}:
        set_threads(a, st, bool(want.get("io")), bool(want.get("sql")))
        changed.append(f"threads IO {'on' if want.get('io') else 'off'}, SQL {'on' if want.get('sql') else 'off'}")
    if bool(record.get("read_only")) != st.read_only:
        sro = record.get("super_read_only")
        set_fence_state(sess, FenceState(bool(record.get("read_only")), None if sro is None else bool(sro)))
        changed.append(f"read_only {'ON' if record.get('read_only') else 'OFF'}")
    done = a.read()
    if not changed:
        return StepResult(Status.OK, msg="already in the recorded state", data=a._data(done))
    return StepResult(Status.CHANGED, msg="; ".join(changed), data=a._data(done))

