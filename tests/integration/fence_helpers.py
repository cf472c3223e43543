"""A private MariaDB for the fence tests (``engine/mysql/instance.py``, binlog on): the
machine's shared server is never fenced, and no test kills a session or locks an account on it.
``fence_server`` is one instance per test module; ``fence_db`` resets it around each test
(both fixtures are offered to every integration test by ``tests/integration/conftest.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pymysql
import pytest

from engine.mysql.instance import MariadbInstance


@pytest.fixture(scope="module")
def fence_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariadbInstance]:
    inst = MariadbInstance(tmp_path_factory.mktemp("fence") / "db1", server_id=1)
    inst.start()
    try:
        yield inst
    finally:
        inst.stop()


class Db:
    """Root on the private server, and what each test created there (undone afterwards)."""

    def __init__(self, inst: MariadbInstance):
        self.inst = inst
        self.users: list[str] = []

    def sql(self, text: str, args: object = None) -> list[tuple[object, ...]]:
        return self.inst.sql(text, args)

    def read_only(self) -> int:
        return int(self.sql("SELECT @@GLOBAL.read_only")[0][0])  # type: ignore[call-overload]

    def user(self, name: str, *grants: str, password: str = "pw") -> str:
        """A fresh account ``name_<random>``@'%' with these global grants; returns its user name."""
        user = f"{name}_{uuid.uuid4().hex[:6]}"
        self.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        self.users.append(user)
        for g in grants:
            self.sql(g.format(user=f"'{user}'@'%'"))
        return user

    def locked(self, user: str, host: str = "%") -> bool:
        got = self.sql("SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = %s AND Host = %s",
                       (user, host))
        return bool(got) and str(got[0][0]) in ("1", "true")

    def login(self, user: str, password: str = "pw", database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(host=self.inst.host, port=self.inst.port, user=user, password=password,
                               autocommit=True, database=database)


@pytest.fixture
def fence_db(fence_server: MariadbInstance) -> Iterator[Db]:
    d = Db(fence_server)
    d.sql("SET GLOBAL read_only = OFF")
    d.sql("CREATE DATABASE IF NOT EXISTS shop")
    d.sql("CREATE TABLE IF NOT EXISTS shop.t (id INT PRIMARY KEY, v VARCHAR(20))")
    yield d
    d.sql("SET GLOBAL read_only = OFF")
    for u in d.users:
        d.sql(f"DROP USER IF EXISTS '{u}'@'%'")
    d.sql("DROP ROLE IF EXISTS fencer_role")
    d.sql("DELETE FROM shop.t")


