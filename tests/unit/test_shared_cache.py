"""The cache of template analyses across processes (engine/templating/shared_cache.py) gives
what the analysis gives, never hides an error, and is dropped whole when what the analysis
depends on changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.templating import render, shared_cache
from engine.templating.shared_cache import SharedCache, open_shared_cache

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [
    "{{ level in ['P0', 'P1'] }}", "{{ x | default(y) }}", "{{ a | lenght }}", "{{ 1 + }}", "{% for i in l %}{{ i }}{% endfor %}",
    "{% if a is defined %}{{ b }}{% endif %}", "{{ x is definedd }}", "\ud800 {{ x | trim }}", "{{ x }}",
]


def _analyses(engine: render.TemplateEngine) -> list[tuple[str | None, frozenset[str], frozenset[str], frozenset[str], bool]]:
    return [(a.error, a.names, a.guarded, a.hostvars, a.hostvars_any) for a in map(engine._analyze, TEMPLATES)]


def _counting_parse(engine: render.TemplateEngine) -> list[str]:
    parsed: list[str] = []
    real = engine.env.parse

    def parse(source: str, *a: object, **kw: object) -> object:
        parsed.append(source)
        return real(source, *a, **kw)  # type: ignore[arg-type]

    engine.env.parse = parse  # type: ignore[method-assign]
    return parsed


def test_a_second_process_has_the_same_analyses_without_parsing(tmp_path: Path) -> None:
    salt = shared_cache.salt()
    assert salt is not None
    first = render.TemplateEngine()
    first.shared = SharedCache(tmp_path, salt)
    expected = _analyses(render.TemplateEngine())
    assert _analyses(first) == expected
    first.shared.save()

    second = render.TemplateEngine()
    second.shared = SharedCache(tmp_path, salt)
    parsed = _counting_parse(second)
    assert _analyses(second) == expected  # errors included, word for word
    assert parsed == []


def test_another_salt_drops_every_entry(tmp_path: Path) -> None:
    one = render.TemplateEngine()
    one.shared = SharedCache(tmp_path, "salt one")
    _analyses(one)
    one.shared.save()
    other = render.TemplateEngine()
    other.shared = SharedCache(tmp_path, "salt two")
    parsed = _counting_parse(other)
    _analyses(other)
    assert len(parsed) == len(TEMPLATES) - 1  # every template but the plain {{ x }}


def test_a_damaged_file_is_an_empty_cache_and_an_unwritable_one_no_cache(tmp_path: Path) -> None:
    (tmp_path / shared_cache.FILE_NAME).write_text('{"salt": "s", "entries": {"x": [')
    engine = render.TemplateEngine()
    engine.shared = SharedCache(tmp_path, "s")
    assert _analyses(engine) == _analyses(render.TemplateEngine())
    (tmp_path / "a file").write_text("")
    cache = SharedCache(tmp_path / "a file" / "runbook", "s")  # a directory that cannot be made (even by root)
    cache.put("{{ a + }}", ("err", frozenset(), frozenset(), frozenset(), False))
    cache.save()  # nothing raised: no cache, nothing else changes


def test_the_salt_follows_jinja2_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    from types import SimpleNamespace

    fake = tmp_path / "jinja2"
    fake.mkdir()
    (fake / "parser.py").write_text("# one\n")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(submodule_search_locations=[str(fake)]))
    before = shared_cache.salt()
    (fake / "parser.py").write_text("# two, longer\n")
    assert shared_cache.salt() != before


def test_too_deep_is_not_kept(tmp_path: Path) -> None:
    engine = render.TemplateEngine()
    engine.shared = SharedCache(tmp_path, "s")
    deep = "{{ " + "(" * 400 + "x" + ")" * 400 + " }}"
    assert (engine.syntax_error(deep) or "").startswith("expression nested too deep")
    assert engine.shared.get(deep) is None


def test_runbook_cache_dir_empty_means_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_CACHE_DIR", "")
    assert open_shared_cache() is None


def _validate(rb: Path, cache: Path) -> tuple[int, str]:
    env = dict(os.environ, RUNBOOK_CACHE_DIR=str(cache), NO_COLOR="1")
    res = subprocess.run([sys.executable, "-m", "engine.cli", "validate", str(rb)], env=env, capture_output=True, text=True,
                         cwd=ROOT)
    return res.returncode, res.stdout + res.stderr


def test_validate_with_a_warm_cache_says_the_same(tmp_path: Path) -> None:
    """The same errors, at the same places, from a cold and from a warm cache; a fixed template
    is valid at once, and broken again it is an error again."""
    rb = tmp_path / "rb.yml"
    broken = ("name: t\nvars: {x: 1}\nstages:\n  - name: s\n    steps:\n      - name: a\n        shell: \"echo {{ x | lenght }}\"\n"
              "      - name: b\n        shell: \"echo {{ y + }}\"\n        when: x is definedd\n")
    rb.write_text(broken)
    cache = tmp_path / "cache"
    cold = _validate(rb, cache)
    assert cold[0] == 2 and "lenght" in cold[1] and "definedd" in cold[1], cold
    assert (cache / shared_cache.FILE_NAME).exists()
    assert _validate(rb, cache) == cold
    rb.write_text(broken.replace("lenght", "length").replace("{{ y + }}", "{{ x + 1 }}").replace("definedd", "defined"))
    assert _validate(rb, cache)[0] == 0
    rb.write_text(broken)
    assert _validate(rb, cache) == cold


def test_an_entry_not_written_by_the_cache_is_analysed_again(tmp_path: Path) -> None:
    """A hand-edited file cannot make a broken template pass: an entry of another shape is
    no entry."""
    import json

    broken = "{{ a | lenght }}"
    key = shared_cache._key(broken)
    for odd in ([5, [], [], [], False], [None, "a", [], [], False], [None, [1], [], [], False], [None, [], [], [], 0],
                [None, [], []], [None, []], {"e": None}, None):
        (tmp_path / shared_cache.FILE_NAME).write_text(json.dumps({"salt": "s", "entries": {key: odd}}))
        engine = render.TemplateEngine()
        engine.shared = SharedCache(tmp_path, "s")
        assert "lenght" in (engine.syntax_error(broken) or ""), odd
