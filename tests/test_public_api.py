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
