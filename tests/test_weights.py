"""crystalgf.weights: option, else environment variable, else the defaults; a one-line error otherwise."""

import pytest

from crystalgf.errors import MissingWeightsError
from crystalgf.weights import locate, places_to_look

VARIABLE = "CRYSTALGF_TEST_WEIGHTS"


def test_option_then_environment_variable_then_defaults(tmp_path, monkeypatch):
    option, named, packaged, cache = (tmp_path / name for name in ("option.json", "env.json", "packaged.json", "cache"))
    monkeypatch.delenv(VARIABLE, raising=False)
    assert places_to_look(None, VARIABLE, [cache, packaged]) == [cache, packaged]
    assert places_to_look(None, None) == []
    monkeypatch.setenv(VARIABLE, str(named))
    assert places_to_look(None, VARIABLE, [packaged]) == [named]
    assert places_to_look(str(option), VARIABLE, [packaged]) == [option]


def test_locate_returns_the_first_present_place(tmp_path):
    packaged = tmp_path / "packaged.json"
    packaged.write_text("{}")
    assert locate("G test", [tmp_path / "cache.json", packaged], "fix it") == packaged
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "model.pt").write_bytes(b"")
    assert locate("H test", [checkpoint], "fix it", holding=("model.pt",)) == checkpoint
    with pytest.raises(MissingWeightsError):  # a directory is not a file, and vice versa
        locate("H test", [checkpoint], "fix it")
    with pytest.raises(MissingWeightsError):
        locate("G test", [packaged], "fix it", holding=("model.pt",))


def test_a_named_place_that_is_missing_is_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "packaged.json").write_text("{}")
    monkeypatch.setenv(VARIABLE, str(tmp_path / "nowhere.json"))
    with pytest.raises(MissingWeightsError) as raised:
        locate("G test", places_to_look(None, VARIABLE, [tmp_path / "packaged.json"]), f"set {VARIABLE}")
    message = str(raised.value)
    assert message == f"G test: weights not found (looked in: {tmp_path / 'nowhere.json'}); set {VARIABLE}"
    assert len(message.splitlines()) == 1
