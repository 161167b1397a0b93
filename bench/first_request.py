"""The first model request of a cold function, per provider, for ``coldstart.py``.

Each provider's local fake (`agent_runtime.testing`) serves from this process on a
loopback socket; a fresh isolated interpreter with the function's deployed path imports
the handler, discovers the agents, then streams the same short request twice. What the
first adds is its time less the second's.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from agent_runtime.testing.fake_anthropic import FakeAnthropic, FakeAnthropicServer
from agent_runtime.testing.fake_bedrock import FakeBedrock, FakeBedrockServer
from agent_runtime.testing.fake_openai import FakeOpenAI, FakeOpenAIServer
from infra.replica import Replica

#: The model each provider is asked for (the fakes answer any).
MODELS = {
    "anthropic": "anthropic/claude-haiku-4-5",
    "openai": "openai/gpt-4.1-mini",
    "bedrock": "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0",
}
REPLY = "A short reply, streamed in a few deltas."

_PROBE = """
import asyncio, time
import {module}
from agent_runtime.registry import discover
discover("agents")
from agent_runtime.messages import Message
from agent_runtime.models import ModelRequest, allow_model_requests, resolve_model

async def main():
    model = resolve_model({model!r})
    request = ModelRequest(messages=[Message.user("hi")])
    with allow_model_requests(True):
        start = time.perf_counter()
        first = await model.request(request)
        middle = time.perf_counter()
        await model.request(request)
        end = time.perf_counter()
    assert first.message.text == {reply!r}, first.message.text
    return middle - start, end - middle

print(*asyncio.run(main()))
"""


@dataclass(frozen=True)
class Cost:
    first: float
    second: float

    @property
    def added(self) -> float:
        return self.first - self.second


@contextmanager
def _fakes() -> Iterator[dict[str, str]]:
    """The three fakes, running; the environment that points each provider at its own."""
    with ExitStack() as stack:
        anthropic = stack.enter_context(FakeAnthropicServer(FakeAnthropic(default=REPLY)))
        openai = stack.enter_context(FakeOpenAIServer(FakeOpenAI(default=REPLY)))
        bedrock = stack.enter_context(FakeBedrockServer(FakeBedrock(default=REPLY)))
        yield {
            "ANTHROPIC_BASE_URL": anthropic.base_url,
            "OPENAI_BASE_URL": openai.base_url,
            "OPENAI_API_KEY": "bench",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.endpoint_url,
        }


def costs(
    replica: Replica, path: list[str], module: str, env: Mapping[str, str], runs: int
) -> dict[str, Cost | str]:
    """Per provider, the median first and second request times (or the error that stopped
    them), runs interleaved across providers."""
    samples: dict[str, list[Cost]] = {provider: [] for provider in MODELS}
    failed: dict[str, str] = {}
    with _fakes() as endpoints:
        for _ in range(runs):
            for provider, model in MODELS.items():
                if provider in failed:
                    continue
                code = _PROBE.format(module=module, model=model, reply=REPLY)
                result = replica.python(code, path, env={**env, **endpoints})
                if result.returncode != 0:
                    failed[provider] = (result.stderr.strip().splitlines() or ["failed"])[-1]
                    continue
                first, second = (float(value) for value in result.stdout.split()[-2:])
                samples[provider].append(Cost(first, second))
    found: dict[str, Cost | str] = dict(failed)
    for provider, measured in samples.items():
        if provider not in failed:
            found[provider] = Cost(
                statistics.median(cost.first for cost in measured),
                statistics.median(cost.second for cost in measured),
            )
    return found
