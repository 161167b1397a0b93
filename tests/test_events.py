"""The event log (memory and DynamoDB on moto), coalescing, and the events a run emits."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_runtime import events as ev
from agent_runtime.adapters.aws.events import MAX_EVENTS_PER_ITEM, DynamoDBEventLog
from agent_runtime.adapters.memory_events import (
    MemoryConnections,
    MemoryEventLog,
    MemoryPoster,
    epoch_base,
)
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.models.base import ModelRequest, ModelResponse, ResponseDone, TextDelta
from agent_runtime.models.test import FunctionModel, ScriptedModel, ToolCall, _TestModel
from agent_runtime.ports import Subscription
from agent_runtime.registry import Registry
from agent_runtime.streaming import Broadcaster, EventStream
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.tools import tool

pytestmark = pytest.mark.asyncio

ONE = InstanceRef("bot", "one")


def idle(n: int = 0) -> ev.Event:
    return ev.Idle(at=f"2026-01-01T00:00:{n % 60:02d}.000Z", agent="bot", id="one")


def delta(text: str, turn: int = 1) -> ev.Event:
    return ev.TextDelta(at="2026-01-01T00:00:00.000Z", agent="bot", id="one", submission_id="s", turn=turn, text=text)


# --- the log contract -------------------------------------------------------------------


async def test_appends_get_contiguous_offsets_and_reads_resume_exactly(backend: Backend, clock: FakeClock) -> None:
    log = backend.events
    first = await log.append(ONE, [idle(0), idle(1)], now=clock())
    second = await log.append(ONE, [idle(2)], now=clock())
    offsets = [e.offset for e in first + second]
    assert offsets == list(range(offsets[0], offsets[0] + 3))
    everything = await log.read(ONE, after=0, limit=100, now=clock())
    assert [e.offset for e in everything.events] == offsets and everything.last == offsets[-1]
    middle = await log.read(ONE, after=offsets[0], limit=1, now=clock())
    assert [e.offset for e in middle.events] == [offsets[1]] and middle.last == offsets[1]
    nothing = await log.read(ONE, after=offsets[-1], limit=100, now=clock())
    assert nothing.events == [] and nothing.last == offsets[-1]
    other = await log.read(InstanceRef("bot", "two"), after=0, limit=100, now=clock())
    assert other.events == []
    assert await log.end(ONE, now=clock()) == offsets[-1]
    assert await log.end(InstanceRef("bot", "two"), now=clock()) == 0


async def test_many_writers_never_overlap_or_leave_gaps(backend: Backend, clock: FakeClock) -> None:
    if backend.kind == "moto":
        # Separate writers, each with its own remembered end: stale views must collide.
        writers = [DynamoDBEventLog(backend.clients["dynamodb"], backend.resources.table) for _ in range(4)]  # type: ignore[union-attr]
    else:
        writers = [backend.events] * 4
    for round_ in range(5):
        await asyncio.gather(*(w.append(ONE, [idle(round_), idle(round_)], now=clock()) for w in writers))
    page = await backend.events.read(ONE, after=0, limit=1000, now=clock())
    offsets = [e.offset for e in page.events]
    assert len(offsets) == 40 and offsets == list(range(offsets[0], offsets[0] + 40))


async def test_expired_events_are_gone_and_a_new_epoch_continues_above(backend: Backend, clock: FakeClock) -> None:
    old = await backend.events.append(ONE, [idle(), idle()], now=clock())
    clock.advance(2 * 24 * 3600)
    assert (await backend.events.read(ONE, after=0, limit=10, now=clock())).events == []
    new = await backend.events.append(ONE, [idle()], now=clock())
    assert new[0].offset > old[-1].offset
    page = await backend.events.read(ONE, after=old[-1].offset, limit=10, now=clock())
    assert [e.offset for e in page.events] == [new[0].offset]


async def test_large_batches_are_stored_in_several_items_and_read_back_whole(backend: Backend, clock: FakeClock) -> None:
    events = [delta(f"{n:04d}" + "x" * 2000) for n in range(MAX_EVENTS_PER_ITEM + 30)]
    stored = await backend.events.append(ONE, events, now=clock())
    start = stored[0].offset
    assert [e.offset for e in stored] == list(range(start, start + len(events)))
    got: list[ev.Event] = []
    after = start - 1
    while page := (await backend.events.read(ONE, after=after, limit=97, now=clock())).events:
        got.extend(page)
        after = page[-1].offset
    assert [e.model_dump() for e in got] == [e.model_dump() for e in stored]
    if backend.kind == "moto":
        items = backend.clients["dynamodb"].scan(TableName=backend.resources.table)["Items"]  # type: ignore[union-attr]
        assert sum(1 for i in items if i["sk"]["S"].startswith("EV#")) > 1
        stored_sizes = [len(i["events"]["S"] if "events" in i else i["events_z"]["B"]) for i in items if i["sk"]["S"].startswith("EV#")]
        assert max(stored_sizes) < 128 * 1024


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_a_turns_batch_is_stored_compressed_below_a_kilobyte(backend: Backend, clock: FakeClock) -> None:
    # DynamoDB bills a write per KB: a turn's few KB of events, mostly repeated keys, fit one.
    log = backend.events
    assert isinstance(log, DynamoDBEventLog) and backend.resources
    small = await log.append(ONE, [idle()], now=clock())
    turn = await log.append(ONE, [delta(f"word {n} ") for n in range(12)], now=clock())
    items = backend.clients["dynamodb"].scan(TableName=backend.resources.table)["Items"]
    batches = {i["sk"]["S"]: i for i in items if i["sk"]["S"].startswith("EV#")}
    assert len(batches) == 2
    first, second = (batches[k] for k in sorted(batches))
    assert "events" in first and "events_z" not in first
    assert "events_z" in second and "events" not in second and len(second["events_z"]["B"]) < 1024
    page = await log.read(ONE, after=small[0].offset - 1, limit=100, now=clock())
    assert [e.model_dump() for e in page.events] == [e.model_dump() for e in small + turn]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_a_batch_stored_as_plain_json_reads_back(backend: Backend, clock: FakeClock) -> None:
    log = backend.events
    assert isinstance(log, DynamoDBEventLog) and backend.resources
    batch = [ev.with_offset(delta(f"word {n} "), 100 + n) for n in range(12)]
    backend.clients["dynamodb"].put_item(
        TableName=backend.resources.table,
        Item={
            "pk": {"S": "I#bot/one"},
            "sk": {"S": f"EV#{100:016d}"},
            "last": {"N": str(batch[-1].offset)},
            "events": {"S": ev.encode_events(batch)},
            "expires_at": {"N": str(int(clock() + 3600))},
        },
    )
    page = await log.read(ONE, after=99, limit=100, now=clock())
    assert [e.model_dump() for e in page.events] == [e.model_dump() for e in batch]


class CountingClient:
    """A DynamoDB client that tells which event-log calls were made: end reads, puts that
    stored and puts that collided."""

    def __init__(self, client: object) -> None:
        self.client = client
        self.calls: list[str] = []

    def query(self, **kwargs: object) -> object:
        self.calls.append("read end")
        return self.client.query(**kwargs)  # type: ignore[attr-defined]

    def put_item(self, **kwargs: object) -> object:
        try:
            answer = self.client.put_item(**kwargs)  # type: ignore[attr-defined]
        except Exception:
            self.calls.append("collided")
            raise
        self.calls.append("stored")
        return answer

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_a_writer_starts_from_its_memory_while_it_holds_and_reads_the_end_once_it_failed(
    backend: Backend, clock: FakeClock
) -> None:
    assert backend.resources
    a, b = (CountingClient(backend.clients["dynamodb"]) for _ in range(2))
    log_a, log_b = (DynamoDBEventLog(c, backend.resources.table) for c in (a, b))
    await log_a.append(ONE, [idle(0)], now=clock())
    assert a.take() == ["read end", "stored"]  # nothing remembered yet
    await log_a.append(ONE, [idle(1)], now=clock())
    assert a.take() == ["stored"]  # alone: its memory holds
    await log_b.append(ONE, [idle(2)], now=clock())
    b.take()
    # B wrote meanwhile: A collides with B's batch, which says where it ends (no read).
    stored = await log_a.append(ONE, [idle(3)], now=clock())
    assert a.take() == ["collided", "stored"]
    # Its memory failed: it reads the end first, and goes on doing so while others write.
    await log_b.append(ONE, [idle(4)], now=clock())
    b.take()
    await log_a.append(ONE, [idle(5)], now=clock())
    assert a.take() == ["read end", "stored"]
    # A read that finds nobody wrote since its last append makes it trust its memory again.
    await log_a.append(ONE, [idle(6)], now=clock())
    assert a.take() == ["read end", "stored"]
    await log_a.append(ONE, [idle(7)], now=clock())
    assert a.take() == ["stored"]
    page = await log_a.read(ONE, after=0, limit=100, now=clock())
    offsets = [e.offset for e in page.events]
    assert offsets == list(range(offsets[0], offsets[0] + 8)) and stored[0].offset == offsets[3]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_a_collision_with_an_expired_batch_starts_the_new_epoch(backend: Backend, clock: FakeClock) -> None:
    assert backend.resources
    client = backend.clients["dynamodb"]
    log_a, log_b = (DynamoDBEventLog(client, backend.resources.table) for _ in range(2))
    await log_a.append(ONE, [idle(0)], now=clock())
    old = await log_b.append(ONE, [idle(1)], now=clock())
    clock.advance(2 * 24 * 3600)  # past the TTL: A's memory points at B's expired batch
    new = await log_a.append(ONE, [idle(2)], now=clock())
    assert new[0].offset >= epoch_base(clock()) > old[0].offset
    page = await log_b.read(ONE, after=0, limit=10, now=clock())
    assert [e.offset for e in page.events] == [new[0].offset]


async def test_connections_are_found_both_ways(backend: Backend, clock: FakeClock) -> None:
    conns = backend.connections
    await conns.add(Subscription("c1", ONE), now=clock())
    await conns.add(Subscription("c2", ONE), now=clock())
    assert await conns.subscribers(ONE) == []
    subscribed = await conns.subscribe("c1", session="s", now=clock())
    assert subscribed == Subscription("c1", ONE, session="s", subscribed=True)
    assert await conns.subscribe("nope", session=None, now=clock()) is None
    assert [s.connection_id for s in await conns.subscribers(ONE)] == ["c1"]
    assert (await conns.get("c2")) == Subscription("c2", ONE)
    await conns.remove("c1")
    await conns.remove("c1")
    assert await conns.subscribers(ONE) == [] and await conns.get("c1") is None


# --- coalescing ---------------------------------------------------------------------------


async def test_deltas_are_coalesced_into_few_writes() -> None:
    log = MemoryEventLog()
    stream = EventStream(ONE, log, clock=lambda: 1_800_000_000.0, flush_bytes=1024, quiet_seconds=60)
    async with stream:
        for _ in range(1000):  # a thousand 4-byte tokens
            await stream.emit(delta("abc "))
    assert stream.writes <= 5
    page = await log.read(ONE, after=0, limit=100, now=1_800_000_000.0)
    assert "".join(e.text for e in page.events if isinstance(e, ev.TextDelta)) == "abc " * 1000


async def test_a_slow_stream_is_flushed_by_time() -> None:
    log = MemoryEventLog()
    async with EventStream(ONE, log, clock=lambda: 1_800_000_000.0, quiet_seconds=0.05) as stream:
        await stream.emit(delta("hello"))
        for _ in range(100):
            if (await log.read(ONE, after=0, limit=10, now=1_800_000_000.0)).events:
                break
            await asyncio.sleep(0.01)
        assert stream.writes == 1


async def test_turns_and_other_events_are_not_merged() -> None:
    log = MemoryEventLog()
    async with EventStream(ONE, log, clock=lambda: 1_800_000_000.0, quiet_seconds=60) as stream:
        await stream.emit(delta("a", turn=1))
        await stream.emit(delta("b", turn=1))
        await stream.emit(delta("c", turn=2))
        await stream.emit(idle())
        await stream.emit(delta("d", turn=2))
    page = await log.read(ONE, after=0, limit=10, now=1_800_000_000.0)
    assert [(e.type, getattr(e, "text", None)) for e in page.events] == [
        ("text_delta", "ab"),
        ("text_delta", "c"),
        ("idle", None),
        ("text_delta", "d"),
    ]


async def test_the_broadcaster_posts_in_order_filters_sessions_and_drops_gone_connections() -> None:
    conns, poster = MemoryConnections(), MemoryPoster()
    for cid, session in (("all", None), ("mine", "s"), ("other", "t"), ("gone", None)):
        await conns.add(Subscription(cid, ONE, session=session, subscribed=True), now=0)
    poster.gone.add("gone")
    log = MemoryEventLog()
    async with EventStream(ONE, log, clock=lambda: 1_800_000_000.0, broadcaster=Broadcaster(conns, poster)) as stream:
        await stream.emit(ev.TextDelta(**stream.fields("s", "sub"), turn=1, text="hi"), flush=True)
        await stream.emit(ev.Idle(**stream.fields()), flush=True)
    frames = {cid: [json.loads(f) for f in sent] for cid, sent in poster.sent.items()}
    assert [f["event"]["type"] for f in frames["all"]] == ["text_delta", "idle"]
    assert [f["event"]["type"] for f in frames["mine"]] == ["text_delta", "idle"]
    assert [f["event"]["type"] for f in frames["other"]] == ["idle"]
    assert frames["all"][0] == {"v": 1, "type": "event", "event": frames["all"][0]["event"]}
    assert await conns.get("gone") is None


class CountingConnections(MemoryConnections):
    """Connections that count the reads of an instance's subscribers."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def subscribers(self, instance: InstanceRef) -> list[Subscription]:
        self.reads += 1
        return await super().subscribers(instance)


async def test_a_stream_asks_who_watches_only_when_it_must() -> None:
    conns, log = CountingConnections(), MemoryEventLog()
    broadcaster = Broadcaster(conns, MemoryPoster())
    # Nothing emitted (a drain that found nothing to run): nobody is asked.
    async with EventStream(ONE, log, clock=lambda: 1_800_000_000.0, broadcaster=broadcaster):
        await asyncio.sleep(0.1)
    assert conns.reads == 0
    # Flushed before `live_seconds`: only the publish asks (after the batch is stored).
    async with EventStream(ONE, log, clock=lambda: 1_800_000_000.0, broadcaster=broadcaster, live_seconds=0.2) as stream:
        await stream.emit(idle(), flush=True)
    assert conns.reads == 1


async def test_a_watched_stream_is_flushed_on_the_live_interval_from_its_first_event() -> None:
    conns, poster, log = CountingConnections(), MemoryPoster(), MemoryEventLog()
    await conns.add(Subscription("c1", ONE, subscribed=True), now=0)
    stream = EventStream(
        ONE, log, clock=lambda: 1_800_000_000.0, broadcaster=Broadcaster(conns, poster), live_seconds=0.05, quiet_seconds=30
    )
    async with stream:
        await stream.emit(delta("hello"))
        for _ in range(100):
            if poster.sent["c1"]:
                break
            await asyncio.sleep(0.01)
        assert [json.loads(f)["event"]["text"] for f in poster.sent["c1"]] == ["hello"]
        # Asked once when the event had waited the live interval, and again by the publish.
        assert conns.reads == 2 and stream.interval == 0.05


# --- what a run emits -------------------------------------------------------------------


def registry_with(**agents: object) -> Registry:
    registry = Registry()
    for name, definition in agents.items():
        registry.add(name, definition)  # type: ignore[arg-type]
    return registry


@tool
def lookup(order: str) -> str:
    """Look an order up.

    Args:
        order: the order number
    """
    return f"order {order} shipped"


async def test_a_run_emits_the_whole_story_in_order(backend: Backend, clock: FakeClock) -> None:
    model = ScriptedModel([ToolCall("lookup", {"order": "42"}), "Your order 42 has shipped."])
    rt = backend.runtime(
        registry_with(support=create_agent(model=model, tools=[lookup])), clock=clock, lease_seconds=30, sleep=clock.sleep
    )
    admission = await rt.prompt("support", "t1", "where is 42?")
    await rt.drain(InstanceRef("support", "t1"), deadline=clock() + 100)
    page = await rt.events_after("support", "t1", after=0)
    kinds = [e.type for e in page.events]
    assert kinds == [
        "submission_queued",
        "agent_start",
        "turn_start",
        "turn_end",
        "tool_start",
        "tool_call",
        "turn_start",
        "text_delta",
        "turn_end",
        "agent_end",
        "submission_settled",
        "idle",
    ]
    offsets = [e.offset for e in page.events]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    by_type = {e.type: e for e in page.events}
    assert all(e.submission_id == admission.record.id for e in page.events if e.type != "idle")
    call = by_type["tool_call"]
    assert isinstance(call, ev.ToolCall) and call.result == "order 42 shipped" and call.status == "ok"
    start = by_type["tool_start"]
    assert isinstance(start, ev.ToolStart) and start.arguments == {"order": "42"}
    end = by_type["agent_end"]
    assert isinstance(end, ev.AgentEnd) and end.outcome is Outcome.completed
    assert end.result is not None and end.result["text"] == "Your order 42 has shipped."
    text = "".join(e.text for e in page.events if isinstance(e, ev.TextDelta))
    assert text == "Your order 42 has shipped."


async def test_failures_and_aborts_are_events(backend: Backend, clock: FakeClock) -> None:
    model = ScriptedModel([RuntimeError("boom"), RuntimeError("boom again")])
    rt = backend.runtime(
        registry_with(flaky=create_agent(model=model, durability={"retry": 2}), echo=create_agent(model="test/echo")),
        clock=clock,
        lease_seconds=30,
        sleep=clock.sleep,
    )
    await rt.prompt("flaky", "f", "go")
    await rt.drain(InstanceRef("flaky", "f"), deadline=clock() + 1000)
    page = await rt.events_after("flaky", "f", after=0)
    errors = [e for e in page.events if isinstance(e, ev.ErrorEvent)]
    assert [e.retrying for e in errors] == [True, False]
    assert [e.type for e in page.events][-3:] == ["agent_end", "submission_settled", "idle"]

    await rt.prompt("echo", "e", "one")
    await rt.prompt("echo", "e", "two")
    await rt.abort("echo", "e", queued=True)
    aborted = [e for e in (await rt.events_after("echo", "e", after=0)).events if e.type == "submission_settled"]
    assert [e.outcome for e in aborted] == [Outcome.aborted, Outcome.aborted]  # type: ignore[union-attr]


async def test_events_long_poll_returns_when_an_event_lands(backend: Backend) -> None:
    rt = backend.runtime(registry_with(echo=create_agent(model="test/echo")))
    first = await rt.events_after("echo", "lp", after=0, wait=0)
    assert first.events == []

    async def later() -> None:
        await asyncio.sleep(0.2)
        await rt.prompt("echo", "lp", "hi")

    task = asyncio.create_task(later())
    loop = asyncio.get_running_loop()
    started = loop.time()
    page = await rt.events_after("echo", "lp", after=0, wait=10, poll=0.02)
    waited = loop.time() - started
    await task
    assert [e.type for e in page.events] == ["submission_queued"]
    assert waited < 5


class _Streamer(_TestModel):
    """Streams `tokens` one-word deltas, then answers with their concatenation."""

    def __init__(self, tokens: int) -> None:
        self.name = "test/streamer"
        self.tokens = tokens

    async def stream(self, request: ModelRequest):  # type: ignore[no-untyped-def, override]
        words = [f"w{n} " for n in range(self.tokens)]
        for word in words:
            yield TextDelta(text=word)
        yield ResponseDone(response=ModelResponse(message=self._message("".join(words))))


async def test_a_thousand_tokens_cost_a_handful_of_event_writes(backend: Backend, clock: FakeClock) -> None:
    rt = backend.runtime(registry_with(talker=create_agent(model=_Streamer(1000))), clock=clock, sleep=clock.sleep)
    await rt.prompt("talker", "t", "talk")
    writes: list[int] = []
    original = rt.stream

    def counting(instance: InstanceRef) -> EventStream:
        stream = original(instance)
        writes.append(0)
        real_append = stream.log.append

        async def append(*args, **kwargs):  # type: ignore[no-untyped-def]
            writes[-1] += 1
            return await real_append(*args, **kwargs)

        stream.log = type("L", (), {"append": staticmethod(append), "read": stream.log.read})()  # type: ignore[assignment]
        return stream

    rt.stream = counting  # type: ignore[method-assign]
    await rt.drain(InstanceRef("talker", "t"), deadline=clock() + 100)
    assert sum(writes) <= 6
    page = await rt.events_after("talker", "t", after=0, limit=1000)
    text = "".join(e.text for e in page.events if isinstance(e, ev.TextDelta))
    assert text == "".join(f"w{n} " for n in range(1000))


async def test_function_models_stream_too(backend: Backend, clock: FakeClock) -> None:
    model = FunctionModel(lambda request: "a b c")
    rt = backend.runtime(registry_with(fn=create_agent(model=model)), clock=clock, sleep=clock.sleep)
    await rt.prompt("fn", "x", "go")
    await rt.drain(InstanceRef("fn", "x"), deadline=clock() + 100)
    page = await rt.events_after("fn", "x", after=0)
    assert "".join(e.text for e in page.events if isinstance(e, ev.TextDelta)) == "a b c"


async def test_timestamps_are_written_as_datetime_writes_them() -> None:
    """`iso` formats each second once and the milliseconds per call; the text is exactly
    what ``datetime`` gives, rounding at the microsecond included."""
    import random
    from datetime import UTC, datetime

    def expected(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    rng = random.Random(7)
    edges = [0.0, 0.0000005, 0.9995, 0.9999995, 1_700_000_000.0005, 1_700_000_000.9999996, 253_402_300_799.999, -0.5]
    spread = [rng.uniform(0, 4e9) for _ in range(20_000)]
    halves = [rng.randint(0, 4_000_000_000) + rng.randint(0, 1_999_999) / 2_000_000 for _ in range(20_000)]
    for t in edges + spread + halves:
        assert ev.iso(t) == expected(t), t
    assert ev.iso(None) is None
