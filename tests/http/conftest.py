"""The `api` fixture: the HTTP Lambda on a backend (`tests.http.harness.serve`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# Before the harness is imported, so that its asserts report their operands.
pytest.register_assert_rewrite("tests.http.harness")

from tests.http.harness import Api, serve  # noqa: E402


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    with serve(getattr(request, "param", "memory")) as api:
        yield api
