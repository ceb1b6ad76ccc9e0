"""Tests for lab.spec: TOML experiment files → validated models and one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lab.spec import (
    Experiment,
    LoadSpec,
    SpecError,
    TargetSpec,
    check_target_importable,
    find_experiment,
    load_experiment,
    parse_duration,
)
from tests.conftest import REPO

BASE = """\
[experiment]
title = "Test"

[target]
app = "targets.catalog:app"

[load]
vus = 4
duration = "10s"

[[load.requests]]
path = "/products/{id}"
params.id = { distribution = "zipf", n = 100 }
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def spec_error(tmp_path: Path, text: str, name: str = "exp.toml") -> SpecError:
    path = write(tmp_path, text, name)
    with pytest.raises(SpecError) as info:
        load_experiment(path)
    err = info.value
    rendered = str(err)
    assert "\n" not in rendered
    assert rendered.startswith(str(path))
    return err


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing needle."""
    hits = [i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


# ------------------------------------------------------------------ good files


def test_caching_example_loads_with_its_variants_merged_env_and_services() -> None:
    exp = load_experiment(REPO / "experiments" / "caching.toml")
    assert exp.name == "caching"
    assert exp.source == REPO / "experiments" / "caching.toml"
    assert exp.experiment.title
    assert exp.load.model == "closed" and exp.load.vus == 32
    assert exp.load.duration == 15.0 and exp.load.warmup == 3.0 and exp.load.timeout == 5.0
    param = exp.load.requests[0].params["id"]
    assert (param.distribution, param.n, param.s) == ("zipf", 1000, 1.1)

    variants = exp.resolved_variants()
    assert [v.name for v in variants] == ["no-cache", "lru", "redis"]
    assert variants[0].target.env == {"CATALOG_ITEMS": "5000", "CACHE": "none"}
    # Only the redis variant asks the lab for a redis-server.
    assert [v.services.redis for v in variants] == ["off", "off", "required"]
    assert variants[1].target.env == {"CATALOG_ITEMS": "5000", "CACHE": "lru"}
    assert variants[1].target.app == "targets.catalog:app"
    assert isinstance(variants[1].load, LoadSpec)
    # The base is untouched by the overrides.
    assert exp.target.env == {"CATALOG_ITEMS": "5000"}


def test_no_variants_gives_one_default(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, BASE))
    variants = exp.resolved_variants()
    assert [v.name for v in variants] == ["default"]
    assert variants[0].target == exp.target
    assert variants[0].load == exp.load
    assert exp.name == "exp"


def test_defaults_and_coercions(tmp_path: Path) -> None:
    text = BASE.replace(
        'app = "targets.catalog:app"',
        'app = "targets.catalog:app"\nenv = { ITEMS = 5000, RATIO = 0.5, DEBUG = true }',
    ).replace('path = "/products/{id}"', 'path = "/products/{id}"\nmethod = "post"')
    exp = load_experiment(write(tmp_path, text))
    assert exp.target.env == {"ITEMS": "5000", "RATIO": "0.5", "DEBUG": "true"}
    assert exp.target.workers == 1
    assert exp.target.ready_path == "/health"
    assert exp.target.ready_timeout == 30.0
    assert exp.target.stats_path == "/stats"
    assert exp.load.requests[0].method == "POST"
    assert exp.load.timeout == 5.0 and exp.load.think_time == 0.0
    assert exp.load.max_in_flight == 1000 and exp.load.client == "auto"


def test_variant_overrides_replace_and_merge(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent(
        """
        [[variants]]
        name = "two-workers"
        target = { workers = 2, env = { A = "1" } }
        load = { vus = 8, duration = "1m" }

        [[variants]]
        name = "open"
        load.model = "open"
        load.rate = 50
        """
    )
    exp = load_experiment(write(tmp_path, text))
    first, second = exp.resolved_variants()
    assert first.target.workers == 2 and first.target.env == {"A": "1"}
    assert first.load.vus == 8 and first.load.duration == 60.0
    assert first.load.requests == exp.load.requests
    # Setting rate drops the base's vus: they are alternatives.
    assert second.load.model == "open" and second.load.rate == 50 and second.load.vus is None


def test_url_target(tmp_path: Path) -> None:
    text = BASE.replace('app = "targets.catalog:app"', 'url = "http://127.0.0.1:8080/"')
    exp = load_experiment(write(tmp_path, text))
    assert exp.target.app is None
    assert exp.target.url == "http://127.0.0.1:8080"


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("20s", 20.0),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        (5, 5.0),
        (2.5, 2.5),
        ("7", 7.0),
        (" 3s ", 3.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize("value", ["abc", "", "10 parsecs", "s", "1.2.3s", True, None, [1]])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like '250ms', '20s', '2m'"):
        parse_duration(value)


def test_parse_duration_message_shows_value() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("abc")
    assert str(info.value) == (
        "expected a duration like '250ms', '20s', '2m' or a number of seconds, got 'abc'"
    )


# ------------------------------------------------------------ stages, level_at


def _load(**fields: object) -> LoadSpec:
    return LoadSpec.model_validate({"requests": [{"path": "/"}], **fields})


def test_level_at_ramps_from_zero_without_vus() -> None:
    load = _load(stages=[{"duration": "10s", "target": 50}, {"duration": "10s", "target": 200}])
    assert load.total_duration_s == 20.0
    assert load.start_level == 0.0
    assert load.level_at(0) == 0.0
    assert load.level_at(5) == pytest.approx(25.0)
    assert load.level_at(10) == pytest.approx(50.0)
    assert load.level_at(15) == pytest.approx(125.0)
    assert load.level_at(20) == pytest.approx(200.0)
    assert load.level_at(999) == pytest.approx(200.0)  # hold after the last stage
    assert load.peak_level == 200.0


def test_level_at_ramps_from_vus() -> None:
    load = _load(vus=10, stages=[{"duration": 4, "target": 30}])
    assert load.start_level == 10.0
    assert load.level_at(2) == pytest.approx(20.0)
    assert load.level_at(4) == pytest.approx(30.0)
    assert load.level_at(100) == pytest.approx(30.0)


def test_level_at_open_model_and_no_stages() -> None:
    assert _load(vus=16).level_at(3) == 16.0
    assert _load(vus=16).total_duration_s == 20.0
    open_load = _load(model="open", rate=100, stages=[{"duration": "2s", "target": 300}])
    assert open_load.level_at(1) == pytest.approx(200.0)
    assert _load(model="open", rate=100, duration="1m").total_duration_s == 60.0


# ------------------------------------------------------------------ bad input


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "experiments" / "nope.toml"
    with pytest.raises(SpecError) as info:
        load_experiment(missing)
    assert str(info.value) == f"{missing}: file not found"
    assert info.value.line is None and info.value.field is None


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", "vus = 4\nduration 10s")
    err = spec_error(tmp_path, text)
    assert err.line == line_of(text, "duration 10s")
    assert err.field is None
    assert f"exp.toml:{err.line}: invalid TOML:" in str(err)


def test_unknown_field_lists_allowed(tmp_path: Path) -> None:
    text = BASE.replace('app = "targets.catalog:app"', 'app = "targets.catalog:app"\nbogus = 1')
    err = spec_error(tmp_path, text)
    assert err.field == "target.bogus"
    assert err.line == line_of(text, "bogus")
    assert "unknown field; allowed: app, url, workers" in err.message
    assert str(err).startswith(f"{tmp_path / 'exp.toml'}:{err.line}: target.bogus: unknown field")


def test_missing_section(tmp_path: Path) -> None:
    text = BASE.replace('[experiment]\ntitle = "Test"\n', "")
    err = spec_error(tmp_path, text)
    assert err.field == "experiment"
    assert "missing [experiment] section" in str(err)


def test_wrong_type(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", 'vus = "many"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.vus"
    assert err.line == line_of(text, "vus =")
    assert err.message == "must be an integer (got 'many')"


def test_out_of_range_int(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", "vus = -3")
    err = spec_error(tmp_path, text)
    assert (
        str(err)
        == f"{tmp_path / 'exp.toml'}:{line_of(text, 'vus =')}: load.vus: must be >= 1 (got -3)"
    )


def test_zero_duration(tmp_path: Path) -> None:
    text = BASE.replace('duration = "10s"', 'duration = "0s"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.duration"
    assert err.line == line_of(text, "duration =")
    assert err.message == "must be > 0 (got '0s')"


def test_negative_duration(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", 'vus = 4\ntimeout = "-2s"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.timeout"
    assert err.line == line_of(text, "timeout =")
    assert "must be > 0" in err.message


def test_bad_duration_string(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", 'vus = 4\nwarmup = "soon"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.warmup"
    assert "expected a duration like" in err.message and "'soon'" in err.message


def test_warmup_longer_than_run(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", 'vus = 4\nwarmup = "10s"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.warmup"
    assert err.line == line_of(text, "warmup =")
    assert "shorter than the run (10s)" in err.message


def test_unknown_distribution_lists_allowed(tmp_path: Path) -> None:
    text = BASE.replace('distribution = "zipf", n = 100', 'distribution = "gauss"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.requests[0].params.id.distribution"
    assert err.line == line_of(text, "params.id")
    assert err.message == ("unknown distribution 'gauss'; allowed: zipf, uniform, sequence, choice")


def test_field_not_used_by_distribution(tmp_path: Path) -> None:
    text = BASE.replace("n = 100", 'n = 100, values = ["a"]')
    err = spec_error(tmp_path, text)
    assert err.field == "load.requests[0].params.id.values"
    assert "does not apply to distribution 'zipf'" in err.message


@pytest.mark.parametrize(
    ("param", "field", "fragment"),
    [
        ('{ distribution = "zipf" }', "n", "needs 'n'"),
        ('{ distribution = "uniform", low = 5 }', "high", "needs 'high'"),
        ('{ distribution = "uniform", low = 5, high = 1 }', "high", "must be >= low"),
        ('{ distribution = "choice", values = [] }', "values", "non-empty"),
        (
            '{ distribution = "choice", values = ["a", "b"], weights = [1] }',
            "weights",
            "one weight",
        ),
        ('{ distribution = "choice", values = ["a"], weights = [0] }', "weights", "sum > 0"),
    ],
)
def test_distribution_rules(tmp_path: Path, param: str, field: str, fragment: str) -> None:
    text = BASE.replace('{ distribution = "zipf", n = 100 }', param)
    err = spec_error(tmp_path, text)
    assert err.field == f"load.requests[0].params.id.{field}"
    assert fragment in err.message


def test_other_distributions_load(tmp_path: Path) -> None:
    text = BASE.replace(
        'params.id = { distribution = "zipf", n = 100 }',
        'params.id = { distribution = "sequence", start = 10, stop = 20 }\n'
        "\n[[load.requests]]\n"
        'path = "/search/{q}/{page}"\n'
        "weight = 0.5\n"
        'params.q = { distribution = "choice", values = ["a", "b"], weights = [3, 1] }\n'
        'params.page = { distribution = "uniform", low = 1, high = 5 }\n',
    )
    exp = load_experiment(write(tmp_path, text))
    second = exp.load.requests[1]
    assert second.params["q"].values == ["a", "b"]
    assert (second.params["page"].low, second.params["page"].high) == (1, 5)
    assert second.weight == 0.5


def test_variant_overriding_nonexistent_field(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent(
        """
        [[variants]]
        name = "a"
        target.env = { CACHE = "none" }

        [[variants]]
        name = "b"
        target.bogus = 1
        """
    )
    err = spec_error(tmp_path, text)
    assert err.field == "variants[1].target.bogus"
    assert err.line == line_of(text, "target.bogus")
    assert "unknown field; allowed: app, url, workers" in err.message


def test_variant_override_making_variant_invalid(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent(
        """
        [[variants]]
        name = "a"

        [[variants]]
        name = "b"
        load = { vus = 0 }
        """
    )
    err = spec_error(tmp_path, text)
    assert err.field == "variants[1].load.vus"
    assert err.line == line_of(text, "load = { vus = 0 }")
    assert err.message == "must be >= 1 (got 0)"


def test_variant_subtable_line(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent(
        """
        [[variants]]
        name = "a"

        [[variants]]
        name = "b"

        [variants.load]
        think_time = "-1s"
        """
    )
    err = spec_error(tmp_path, text)
    assert err.field == "variants[1].load.think_time"
    assert err.line == line_of(text, "think_time")


def test_open_model_without_rate(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", 'model = "open"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.rate"
    assert err.line == line_of(text, "[load]")
    assert "open model needs 'rate'" in err.message


def test_vus_with_open_model(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", 'model = "open"\nrate = 10\nvus = 4')
    err = spec_error(tmp_path, text)
    assert err.field == "load.vus"
    assert err.line == line_of(text, "vus =")


def test_unknown_load_model(tmp_path: Path) -> None:
    text = BASE.replace("vus = 4", 'vus = 4\nmodel = "burst"')
    err = spec_error(tmp_path, text)
    assert err.message == "unknown model 'burst'; allowed: closed, open"


def test_placeholder_without_param(tmp_path: Path) -> None:
    text = BASE.replace('path = "/products/{id}"', 'path = "/products/{id}/{size}"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.requests[0].path"
    assert err.line == line_of(text, "path =")
    assert "placeholder {size} has no entry in params" in err.message


def test_second_request_line(tmp_path: Path) -> None:
    text = BASE + '\n[[load.requests]]\npath = "/health"\nweight = 0\n'
    err = spec_error(tmp_path, text)
    assert err.field == "load.requests[1].weight"
    assert err.line == line_of(text, "weight = 0")


def test_no_requests(tmp_path: Path) -> None:
    text = BASE.split("[[load.requests]]")[0]
    err = spec_error(tmp_path, text)
    assert err.field == "load.requests"
    assert "[[load.requests]]" in err.message


def test_duplicate_variant_names(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent(
        """
        [[variants]]
        name = "lru"

        [[variants]]
        name = "lru"
        """
    )
    err = spec_error(tmp_path, text)
    assert err.field == "variants[1].name"
    assert err.line == line_of(text, 'name = "lru"', occurrence=2)
    assert "duplicate variant name 'lru'" in err.message


def test_bad_variant_name(tmp_path: Path) -> None:
    err = spec_error(tmp_path, BASE + '\n[[variants]]\nname = "no cache"\n')
    assert err.field == "variants[0].name"
    assert "letters, digits" in err.message


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ('app = "targets.catalog:app"\nurl = "http://x"', "exactly one of 'app'"),
        ("workers = 2", "exactly one of 'app'"),
    ],
)
def test_app_xor_url(tmp_path: Path, target: str, fragment: str) -> None:
    err = spec_error(tmp_path, BASE.replace('app = "targets.catalog:app"', target))
    assert err.field == "target"
    assert fragment in err.message


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('app = "targets/catalog.py"', "target.app"),
        ('url = "ftp://example.com"', "target.url"),
    ],
)
def test_bad_app_or_url(tmp_path: Path, line: str, field: str) -> None:
    err = spec_error(tmp_path, BASE.replace('app = "targets.catalog:app"', line))
    assert err.field == field


def test_bad_method(tmp_path: Path) -> None:
    text = BASE.replace('path = "/products/{id}"', 'path = "/products/{id}"\nmethod = "FETCH"')
    err = spec_error(tmp_path, text)
    assert err.field == "load.requests[0].method"
    assert "allowed: GET, HEAD, POST" in err.message


def test_header_inside_description_is_not_a_table(tmp_path: Path) -> None:
    text = BASE.replace(
        'title = "Test"', 'title = "Test"\ndescription = """\n[load]\nvus = 1\n"""'
    ).replace("vus = 4", "vus = 0")
    err = spec_error(tmp_path, text)
    assert err.line == line_of(text, "vus = 0")


def test_spec_error_format() -> None:
    assert str(SpecError("experiments/x.toml", 14, "load.vus", "must be >= 1 (got -3)")) == (
        "experiments/x.toml:14: load.vus: must be >= 1 (got -3)"
    )
    assert str(SpecError("x.toml", None, None, "file not found")) == "x.toml: file not found"
    assert str(SpecError("x.toml", None, "a.b", "one\ntwo")) == "x.toml: a.b: one two"


def test_experiment_model_validate_checks_variants() -> None:
    data = {
        "experiment": {"title": "t"},
        "target": {"url": "http://127.0.0.1:1"},
        "load": {"vus": 1, "requests": [{"path": "/"}]},
        "variants": [{"name": "a", "load": {"nope": 1}}],
    }
    with pytest.raises(ValueError, match="unknown field"):
        Experiment.model_validate(data)


# ------------------------------------------------------------------ find_experiment


def test_find_experiment(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "caching.toml").write_text(BASE)
    (experiments / "workers.toml").write_text(BASE)
    assert find_experiment("caching", experiments) == experiments / "caching.toml"
    assert find_experiment("caching.toml", experiments) == experiments / "caching.toml"
    direct = experiments / "workers.toml"
    assert find_experiment(str(direct), experiments) == direct
    with pytest.raises(SpecError) as info:
        find_experiment("nope", experiments)
    assert str(info.value) == (f"nope: no such experiment file (looked in {experiments}/); "
                               "known experiments: caching, workers")


def test_check_target_importable_ignores_url_targets() -> None:
    check_target_importable(TargetSpec(url="http://127.0.0.1:9"), "exp.toml")


def test_full_dump_round_trips(tmp_path: Path) -> None:
    # The engine sends load.model_dump(mode="json") to generator workers, which validate it.
    text = BASE.replace(
        'params.id = { distribution = "zipf", n = 100 }',
        'params.id = { distribution = "choice", values = ["a", 1], weights = [1, 2] }',
    )
    for path in (REPO / "experiments" / "caching.toml", write(tmp_path, text)):
        exp = load_experiment(path)
        for variant in exp.resolved_variants():
            load = variant.load
            assert LoadSpec.model_validate(load.model_dump(mode="json")) == load
            assert LoadSpec.model_validate(load.model_dump()) == load
            target = variant.target
            assert TargetSpec.model_validate(target.model_dump(mode="json")) == target
        again = Experiment.model_validate(exp.model_dump(mode="json"))
        assert again.model_dump() == exp.model_dump()
    url_target = TargetSpec(url="http://127.0.0.1:1", stats_path="")
    assert TargetSpec.model_validate(url_target.model_dump(mode="json")) == url_target


def test_variant_switching_alternatives_drops_the_other(tmp_path: Path) -> None:
    text = BASE.replace(
        'app = "targets.catalog:app"', 'app = "targets.catalog:app"\nenv = { A = "1" }'
    )
    text = text.replace("vus = 4", 'vus = 4\nthink_time = "1s"\nmax_rps = 100')
    text += textwrap.dedent(
        """
        [[variants]]
        name = "external"
        target.url = "https://example.com"
        load = { model = "open", rate = 20 }
        """
    )
    (variant,) = load_experiment(write(tmp_path, text)).resolved_variants()
    assert (variant.target.app, variant.target.url, variant.target.env) == (
        None,
        "https://example.com",
        {},
    )
    assert (variant.load.vus, variant.load.rate, variant.load.max_rps) == (None, 20, None)
    assert variant.load.think_time == 0.0
