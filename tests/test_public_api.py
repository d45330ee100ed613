import doctest
from pathlib import Path

import thread_chunks


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(thread_chunks) if not name.startswith("_")}
    public.add("__version__")
    assert set(thread_chunks.__all__) == public


def test_public_objects_claim_the_public_module() -> None:
    for name in thread_chunks.__all__:
        obj = getattr(thread_chunks, name)
        if callable(obj):
            assert obj.__module__.startswith("thread_chunks"), name
            assert "Examples" in (obj.__doc__ or ""), name


def test_version_is_a_string() -> None:
    assert isinstance(thread_chunks.__version__, str)
    assert thread_chunks.__version__[0].isdigit()


def test_checkpoint_method_examples(tmp_path: Path) -> None:
    # pytest's doctest finder skips methods defined under another __module__.
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    globs = {"tmp": tmp_path, "Checkpoint": thread_chunks.Checkpoint}
    tests = finder.find(
        thread_chunks.Checkpoint, "Checkpoint", module=False, globs=globs
    )
    method_tests = [t for t in tests if t.name != "Checkpoint" and t.examples]
    assert {t.name.rsplit(".", 1)[1] for t in method_tests} >= {"apply", "matches"}
    for test in method_tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
