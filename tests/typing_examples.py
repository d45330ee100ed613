"""Checked by mypy in CI (not run by pytest): the types users see.

Each ``assert_type`` fails type checking if a signature loses the user's types.
"""

from __future__ import annotations

from typing import Any, assert_type

from thread_chunks import Chunker, LabelledActor, achunk, achunk_iter, chunk


def length(text: str) -> int:
    return len(text)


async def fetch(url: str) -> bytes:
    return url.encode()


async def in_an_app() -> None:
    assert_type(await achunk(length, [["a"]]), list[int])
    assert_type(await achunk(fetch, [["u"]], path="ck.pkl"), list[bytes])
    assert_type(await achunk(None, [[1]], actors=[LabelledActor(abs)]), list[Any])


def in_a_script() -> None:
    assert_type(chunk(length, [["a"]], None, 2, False, "ck.pkl"), list[int])
    assert_type(chunk(fetch, [["u"]], checkpoint_every=1.0), list[bytes])
    assert_type(chunk(None, [[1]], [LabelledActor(abs)]), list[Any])
    chunker = Chunker(length, chunk_size=2)
    assert_type(chunker, Chunker[int])
    assert_type(chunker([["a"]]), list[int])
    assert_type(chunker([["u"]], func=fetch), list[bytes])
    assert_type(Chunker(fetch)([["u"]]), list[bytes])


def foreign_keywords_are_type_errors() -> None:
    async def in_an_app() -> None:
        chunker = Chunker(length)
        await chunker.achunk([["a"]], n_jobs=2)  # type: ignore[arg-type]
        async with achunk_iter(length, [["a"]], n_jobs=2):  # type: ignore[arg-type]
            pass

    chunk(length, [["a"]], n_jobs=2)  # type: ignore[call-overload]
