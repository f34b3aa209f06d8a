"""Import stub for the `openai` package, used only when the real one is not installed.

llama.cpp's server tests import `from openai import OpenAI` at module level; without this stub
whole test files would fail to import. This is not a client: constructing one skips the test.
"""

import pytest

REASON = "openai Python package unavailable (PyPI unreachable)"


class OpenAI:
    def __init__(self, *args, **kwargs):
        pytest.skip(REASON)


class AsyncOpenAI(OpenAI):
    pass


class OpenAIError(Exception):
    pass


class APIError(OpenAIError):
    pass
