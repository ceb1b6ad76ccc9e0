"""lab.spec's pre-flight import check, which imports the target's module in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.spec import (
    SpecError,
    TargetSpec,
    check_target_importable,
    load_experiment,
)
from tests.unit.test_spec import BASE, line_of, write

# ------------------------------------------------------------ check_target_importable


def test_check_target_importable_missing_module(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("targets.catalog:app", "targets.nope:app"))
    exp = load_experiment(path)
    with pytest.raises(SpecError) as info:
        check_target_importable(exp.target, str(path))
    err = info.value
    assert err.field == "target.app"
    assert err.line == line_of(BASE, "app =")
    assert "cannot import 'targets.nope:app'" in err.message
    assert "ModuleNotFoundError" in err.message
    assert "\n" not in str(err)


def test_check_target_importable_valid_and_missing_attribute(tmp_path: Path) -> None:
    package = tmp_path / "mytargets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(
        "import os\n"
        "assert os.environ['TINY_MODE'] == 'on'\n"
        "async def app(scope, receive, send):\n"
        "    pass\n"
    )
    good = TargetSpec(app="mytargets.tiny:app", app_dir=str(tmp_path), env={"TINY_MODE": "on"})
    check_target_importable(good, "exp.toml")
    check_target_importable(good, "exp.toml")  # cached: no second subprocess needed

    bad = TargetSpec(app="mytargets.tiny:nope", app_dir=str(tmp_path), env={"TINY_MODE": "on"})
    with pytest.raises(SpecError) as info:
        check_target_importable(bad, "exp.toml")
    assert info.value.field == "target.app"
    assert "AttributeError" in info.value.message
