"""The restore planner's decisions on hand-made facts (no server): column lists, emptiness,
keys and allow_duplicates, the upsert identity, MyISAM after a partial load, triggers, an empty
target schema, snapshots for truncate and recreate."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.actions.restore.decide import make_plan, trigger_definition
from engine.actions.restore.plan import DumpTrigger, Facts, LiveTrigger, RestoreOptions
from engine.errors import ActionError
from engine.mysql.dump import parse_create_table
from engine.mysql.target import TargetColumn, TargetTable

CREATE = b"CREATE TABLE `u` (`id` int NOT NULL, `email` varchar(40) NOT NULL, `n` int DEFAULT NULL,"
CREATE_U = CREATE + b" PRIMARY KEY (`id`), UNIQUE KEY `uq_email` (`email`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
CREATE_NOPK = CREATE + b" UNIQUE KEY `uq_email` (`email`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
CREATE_KEYLESS = CREATE[:-1] + b") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"


@dataclass
class _TableScan:
    rows: int = 2
    data_bytes: int = 100
    column_lists: dict[tuple[str, ...] | None, int] = field(default_factory=lambda: {None: 0})
    load_data_safe: bool = True
    has_triggers: bool = False
    schema: str | None = None


@dataclass
class _Scan:
    tables: dict[str, _TableScan]


def _target(name: str = "u", pk: tuple[str, ...] = ("id",), uniques: tuple[tuple[str, tuple[str, ...]], ...] = (("uq_email", ("email",)),),
            engine: str = "InnoDB", nullable_email: bool = False) -> TargetTable:
    cols = (TargetColumn("id", "int(11)", False, False, auto_increment=True),
            TargetColumn("email", "varchar(40)", nullable_email, False, "utf8mb4", "utf8mb4_general_ci"),
            TargetColumn("n", "int(11)", True, False))
    return TargetTable(name, cols, pk, engine, "BASE TABLE", uniques, 10)


def _facts(create: bytes = CREATE_U, target: dict[str, TargetTable] | None = None, **kw: object) -> Facts:
    options = kw.pop("options", RestoreOptions())
    scan = kw.pop("scan", _Scan({"u": _TableScan()}))
    base = dict(scan=scan, defs={"u": parse_create_table(create)}, names=["u"], schema="s", options=options,
                target={"u": _target()} if target is None else target, with_rows={"u"},
                default_collations={"utf8mb4": "utf8mb4_general_ci"})
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def _refused(f: Facts) -> str:
    with pytest.raises(ActionError) as exc:
        make_plan(f)
    return exc.value.message


def test_upsert_into_rows_is_staged_by_primary_key_with_the_other_unique_keys() -> None:
    t = make_plan(_facts(options=RestoreOptions(on_conflict="upsert"))).tables[0]
    assert t.staged and t.identity == ("id",) and t.unique_keys == (("uq_email", ("email",)),)
    assert t.shape.conflict == "error"  # the rows themselves go by plain INSERT / LOAD DATA
    assert "through a temporary copy, applied by id" in t.strategy()


def test_upsert_into_an_empty_table_is_a_plain_load() -> None:
    t = make_plan(_facts(options=RestoreOptions(on_conflict="upsert"), with_rows=set())).tables[0]
    assert not t.staged and t.empty


def test_upsert_without_primary_key_matches_by_a_not_null_unique_key() -> None:
    t = make_plan(_facts(CREATE_NOPK, options=RestoreOptions(on_conflict="upsert"), target={"u": _target(pk=())})).tables[0]
    assert t.identity == ("email",) and t.unique_keys == ()
    msg = _refused(_facts(CREATE_NOPK, options=RestoreOptions(on_conflict="upsert", schema_mismatch="common_columns"),
                          target={"u": _target(pk=(), nullable_email=True)}))
    assert "NOT NULL unique key" in msg and "allow_duplicates" in msg


@pytest.mark.parametrize("conflict", ["error", "ignore", "replace", "upsert"])
def test_keyless_table_with_rows(conflict: str) -> None:
    keyless = {"u": _target(pk=(), uniques=())}
    msg = _refused(_facts(CREATE_KEYLESS, options=RestoreOptions(on_conflict=conflict), target=keyless))
    assert "no primary or unique key" in msg and "allow_duplicates: true" in msg
    plan = make_plan(_facts(CREATE_KEYLESS, options=RestoreOptions(on_conflict=conflict, allow_duplicates=True), target=keyless))
    assert not plan.tables[0].staged
    assert make_plan(_facts(CREATE_KEYLESS, options=RestoreOptions(on_conflict=conflict), target=keyless,
                            with_rows=set())).tables  # empty: nothing to double


def test_column_lists_of_the_data_statements_decide() -> None:
    create = CREATE + b" `g` int GENERATED ALWAYS AS (`n` * 2) VIRTUAL, PRIMARY KEY (`id`))"
    scan = _Scan({"u": _TableScan(column_lists={("id", "email", "n"): 0})})
    target = {"u": TargetTable("u", _target().columns + (TargetColumn("g", "int(11)", True, True),), ("id",), "InnoDB",
                               "BASE TABLE")}
    t = make_plan(_facts(create, target=target, scan=scan)).tables[0]
    assert t.shape.columns == ("id", "email", "n") and t.shape.explicit and not t.shape.skip
    t = make_plan(_facts(create, target=target)).tables[0]  # mariadb-dump: every column, generated ones skipped
    assert t.shape.columns == ("id", "email", "n", "g") and t.shape.skip == {"g"} and t.shape.has_generated
    msg = _refused(_facts(create, target=target, scan=_Scan({"u": _TableScan(column_lists={("id", "email", "n"): 0,
                                                                                            ("id", "n", "email"): 9})})))
    assert "(id, email, n) and (id, n, email)" in msg
    msg = _refused(_facts(create, target=target, scan=_Scan({"u": _TableScan(column_lists={("id", "nope"): 0})})))
    assert "(id, nope)" in msg and "(id, email, n, g)" in msg and "no column nope" in msg


def test_an_empty_target_schema_creates_and_a_lone_missing_table_is_refused() -> None:
    plan = make_plan(_facts(target={}, target_was_empty=True))
    assert plan.tables[0].ddl == "create" and plan.tables[0].created
    assert "missing on the target" in _refused(_facts(target={"other": _target("other")}))


@pytest.mark.parametrize("options, verb", [(RestoreOptions(truncate=True), "truncate"),
                                           (RestoreOptions(schema_mismatch="recreate"), "recreate")])
def test_truncate_and_recreate_need_this_runs_snapshot(options: RestoreOptions, verb: str) -> None:
    assert verb in _refused(_facts(options=options)) and "snapshot" in _refused(_facts(options=options))
    t = make_plan(_facts(options=options, snapshotted={"u"})).tables[0]
    assert t.keep_counter  # the live AUTO_INCREMENT is kept


def test_myisam_left_partial_is_reloaded_only_when_its_rows_are_ours() -> None:
    myisam = {"u": _target(engine="MyISAM")}
    partial = {"u": "an interrupted load left 5 row(s)"}
    msg = _refused(_facts(target=myisam, prepared_empty={"u"}, partial=partial))
    assert "in doubt" in msg and "TRUNCATE u" in msg
    t = make_plan(_facts(target=myisam, prepared_empty={"u"}, partial=partial, created_by_step={"u"})).tables[0]
    assert t.reload and "reloaded whole" in t.strategy()
    assert make_plan(_facts(target=myisam, prepared_empty={"u"}, partial=partial, snapshotted={"u"})).tables[0].reload
    assert "exactly-once" in _refused(_facts(target=myisam))  # rows it did not bring


def test_charset_difference_is_a_finding() -> None:
    t = _target()
    latin = TargetTable("u", (t.columns[0], TargetColumn("email", "varchar(40)", False, False, "latin1", "latin1_swedish_ci"),
                              t.columns[2]), ("id",), "InnoDB", "BASE TABLE", t.unique_keys)
    assert "CHARACTER SET latin1 on the target, utf8mb4 in the dump" in _refused(_facts(target={"u": latin}))
    plan = make_plan(_facts(target={"u": latin}, options=RestoreOptions(schema_mismatch="common_columns")))
    assert [d.what for d in plan.findings] == ["charset"]


def test_triggers_the_target_has_are_kept_and_differences_reported() -> None:
    live = LiveTrigger("u", "t1", "CREATE DEFINER=`root`@`%` TRIGGER t1 AFTER INSERT ON u FOR EACH ROW SET @a = NEW.id * 2", "",
                       "root@%")
    same = LiveTrigger("u", "t2", "CREATE TRIGGER `t2` BEFORE DELETE ON `u` FOR EACH ROW SET @b = 1", "", "root@%")
    dump = [DumpTrigger("u", "t1", b"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER t1 AFTER INSERT ON u"
                                   b" FOR EACH ROW SET @a = NEW.id */"),
            DumpTrigger("u", "t2", b"/*!50003 CREATE*/ /*!50003 TRIGGER t2 BEFORE DELETE ON u FOR EACH ROW SET @b = 1 */"),
            DumpTrigger("u", "t3", b"CREATE TRIGGER t3 AFTER UPDATE ON u FOR EACH ROW SET @c = 1")]
    plan = make_plan(_facts(live_triggers=[live, same], dump_triggers=dump, account="root@%"))
    assert plan.skip_dump_triggers == {"t1", "t2"} and [t.name for t in plan.live_triggers] == ["t1", "t2"]
    assert len(plan.warnings) == 1 and "trigger t1 on u differs" in plan.warnings[0] and "NEW.id * 2" in plan.warnings[0]
    assert any("t3" in n and "created after the load" in n for n in plan.notes)
    msg = _refused(_facts(live_triggers=[live], account="app@%", can_set_definer=False))
    assert "root@%" in msg and "SET USER" in msg


def test_trigger_definition_ignores_definer_quoting_and_spacing() -> None:
    assert trigger_definition("CREATE DEFINER=`a`@`%` TRIGGER `x` AFTER INSERT ON `t` FOR EACH ROW\n  SET @a = 1") == \
        trigger_definition(b"/*!50003 CREATE*/ /*!50017 DEFINER=`b`@`h`*/ /*!50003 TRIGGER x AFTER INSERT ON t FOR EACH ROW SET @a = 1 */")
