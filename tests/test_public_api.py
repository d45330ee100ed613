import doctest
import re
from pathlib import Path

import pytest

import thread_chunks


def test_all_lists_exactly_the_public_names() -> None:
    # dir(), not vars(): some names are imported on first use (PEP 562).
    public = {name for name in dir(thread_chunks) if not name.startswith("_")}
    public.add("__version__")
    assert set(thread_chunks.__all__) == public


def test_version_is_a_string() -> None:
    assert isinstance(thread_chunks.__version__, str)
    assert thread_chunks.__version__[0].isdigit()


@pytest.mark.parametrize(
    ("cls", "methods"),
    [
        (thread_chunks.Checkpoint, {"apply", "arguments", "matches"}),
        (thread_chunks.LabelledActor, {"run", "set_func", "get_func"}),
        (thread_chunks.Chunker, {"achunk", "actors", "chunk_size"}),
        (thread_chunks.Progress, {"as_json"}),
    ],
)
def test_method_examples(cls: type, methods: set[str], tmp_path: Path) -> None:
    # pytest's doctest finder skips the methods of a class whose __module__ is
    # the package rather than the file that defines them: run them here.
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    globs = {
        "tmp": tmp_path,
        cls.__name__: cls,
        "chunk": thread_chunks.chunk,
        "progress": thread_chunks.progress,
    }
    # The methods of our own base classes too (Checkpoint's come from
    # _store.CheckpointData, the part of it that a run uses).
    tests = [
        test
        for klass in cls.__mro__
        if klass.__module__.startswith("thread_chunks")
        for test in finder.find(klass, cls.__name__, module=False, globs=globs)
    ]
    method_tests = [t for t in tests if t.name != cls.__name__ and t.examples]
    assert {t.name.rsplit(".", 1)[1] for t in method_tests} >= methods
    for test in method_tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_every_public_callable_has_an_example() -> None:
    for name in thread_chunks.__all__:
        obj = getattr(thread_chunks, name)
        if callable(obj):
            assert "Examples" in (obj.__doc__ or ""), name


API = Path(__file__).parent.parent / "docs" / "api.md"


def test_every_public_name_is_in_the_api_reference() -> None:
    text = API.read_text()
    documented = set(
        re.findall(
            r"^\.\. (?:autofunction|autoclass|py:class|py:data):: (\w+)", text, re.M
        )
    )
    assert set(thread_chunks.__all__) <= documented


def test_the_checkpoint_reference_shows_load_and_save() -> None:
    block = API.read_text().split(".. autoclass:: Checkpoint\n")[1].split("\n\n")[0]
    members = re.search(r":members: (.*?)\n   :", block + "\n   :", re.S)
    assert members is not None
    names = {name.strip() for name in members.group(1).split(",")}
    assert {"load", "save"} <= names
    assert ":inherited-members:" in block  # save comes from saveable-objects
    assert ":show-inheritance:" not in block  # the base is said in words


def test_calls_failed_example(tmp_path: Path) -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    (test,) = finder.find(thread_chunks.CallsFailed, "CallsFailed", module=False,
                          globs={})  # fmt: skip
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_worker_died_example() -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    (test,) = finder.find(thread_chunks.WorkerDied, "WorkerDied", module=False,
                          globs={})  # fmt: skip
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
