"""The local fake of Bedrock Runtime's Converse API itself: its event stream framing
against the encoding's reference vectors and botocore's decoder, and the requests it
refuses as Converse does (through a real boto3 client)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from agent_runtime.testing.fake_bedrock import (
    FakeBedrock,
    FakeBedrockServer,
    encode_message,
    event_message,
)

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
PDF = b"%PDF-1.7\n%%EOF\n"


@pytest.fixture
def server() -> Iterator[FakeBedrockServer]:
    with FakeBedrockServer(FakeBedrock()) as running:
        yield running


@pytest.mark.parametrize(
    ("headers", "payload", "encoded"),
    [
        # Known answers from the event stream encoding's reference test vectors.
        ({}, b"", b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff"),
        ({}, b"{'foo':'bar'}", b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96"),
        (
            {"content-type": "application/json"},
            b"{'foo':'bar'}",
            b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10"
            b"application/json{'foo':'bar'}\x8d\x9c\x08\xb1",
        ),
        (
            {":message-type": "error", ":error-code": "code", ":error-message": "message"},
            b"",
            b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e\x0d:message-type\x07\x00\x05error"
            b"\x0b:error-code\x07\x00\x04code\x0e:error-message\x07\x00\x07message\x6b\x6c\xea\x3d",
        ),
    ],
    ids=["empty", "payload", "header-and-payload", "three-headers"],
)
def test_event_framing_matches_the_reference_vectors(
    headers: dict[str, str], payload: bytes, encoded: bytes
) -> None:
    assert encode_message(headers, payload) == encoded


def test_botocore_decodes_the_fakes_events_across_chunk_boundaries() -> None:
    stream = event_message("contentBlockDelta", {"delta": {"text": "hé"}, "contentBlockIndex": 0})
    stream += event_message("messageStop", {"stopReason": "end_turn"})
    buffer = EventStreamBuffer()
    messages: list[Any] = []
    for i in range(0, len(stream), 7):  # arbitrary cuts, mid-prelude and mid-header included
        buffer.add_data(stream[i : i + 7])
        messages.extend(buffer)

    assert [m.headers for m in messages] == [
        {":event-type": t, ":content-type": "application/json", ":message-type": "event"}
        for t in ("contentBlockDelta", "messageStop")
    ]
    assert messages[0].payload.decode() == '{"delta":{"text":"h\\u00e9"},"contentBlockIndex":0}'


def test_fake_refuses_what_converse_refuses(server: FakeBedrockServer) -> None:
    server.fake.default = "fine"
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )
    use = {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}
    result = {"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}
    doc = {"document": {"format": "pdf", "name": "a.pdf", "source": {"bytes": PDF}}}
    refused: dict[str, list[dict[str, Any]]] = {
        "toolConfig field must be defined": [
            {"role": "user", "content": [{"text": "q"}]},
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [result]},
        ],
        "must start with a user message": [{"role": "assistant", "content": [{"text": "q"}]}],
        "is blank": [{"role": "user", "content": [{"text": " "}]}],
        "document file name": [{"role": "user", "content": [{"text": "q"}, doc]}],
    }

    for reason, messages in refused.items():
        with pytest.raises(ClientError) as caught:
            client.converse(modelId=MODEL_ID, messages=messages)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert reason in caught.value.response["Error"]["Message"]

    question = [{"role": "user", "content": [{"text": "q"}]}]
    answer = client.converse(modelId=MODEL_ID, messages=question)
    assert answer["output"]["message"]["content"] == [{"text": "fine"}]
