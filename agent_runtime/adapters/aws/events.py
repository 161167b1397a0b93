"""The event log and the WebSocket connection registry on the instance table, and the
API Gateway management API as the `Poster`.

Items (same table and keys as `adapters.aws.dynamodb`):

    pk = "I#{agent}/{id}"
    sk = "EV#{first:016d}"       a batch of events with offsets first..last; `last`,
                                 `events` (JSON list) or, past `COMPRESS_FROM_BYTES`,
                                 `events_z` (that JSON, zlib-compressed, binary: a
                                 turn's batch is a few KB of repeated keys, and
                                 DynamoDB bills writes per KB), `expires_at` (TTL)
         "CONN#{connection_id}"  a connection attached to the instance (for fan-out)
    pk = "C#{connection_id}", sk = "META"
                                 the same connection, found by its id ($default, $disconnect)

Offsets: batches tile the offsets contiguously. A writer appends at (end of the last
batch it knows) + 1 with ``attribute_not_exists(sk)``. A writer whose view is stale
names the first offset of a batch that exists, so its put fails, it reads the true end
and tries again: no two batches overlap and none leaves a gap. Which view it starts from
is a matter of cost only (see `DynamoDBEventLog`): a failed conditional put is billed as a
write, five times the price of the read that would have found the end. A batch holds at most
`MAX_EVENTS_PER_ITEM` events, so a reader finds the batch holding offset ``after + 1``
with one query starting `MAX_EVENTS_PER_ITEM` below it. Batches expire in the order
they were written (each one's TTL is later than the one before), so a log whose last
batch has expired has expired entirely, and its next epoch starts at `epoch_base`.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.offload import offload
from agent_runtime.adapters.memory_events import epoch_base
from agent_runtime.errors import LedgerError
from agent_runtime.events import Event, decode_events, encode_events, with_offset
from agent_runtime.ids import InstanceRef
from agent_runtime.ports import EventPage, Subscription
from agent_runtime.settings import CONNECTION_TTL_SECONDS, EVENT_TTL_SECONDS

#: Events per stored batch, and the JSON size a batch may reach (items stay far below
#: DynamoDB's 400 KB; one event is at most a few KB, see `events.EVENT_TEXT_MAX`).
MAX_EVENTS_PER_ITEM = 500
MAX_ITEM_JSON_BYTES = 96 * 1024
MAX_APPEND_RETRIES = 100
#: Collisions after which a writer tries right after the batch in its way; past them it
#: reads the end.
MAX_HOPS = 3
#: Batches whose JSON is at least this long are stored compressed (smaller ones would
#: not drop below the next KB).
COMPRESS_FROM_BYTES = 1024
#: A writer trusts the log end it remembers for at most this long, then reads it again.
END_CACHE_SECONDS = 60.0

Item = dict[str, Any]


def _pk(instance: InstanceRef) -> str:
    return f"I#{instance.key}"


def _ev(first: int) -> str:
    return f"EV#{first:016d}"


def _events_attribute(events: list[Event]) -> Item:
    text = encode_events(events)
    if len(text) < COMPRESS_FROM_BYTES:
        return {"events": {"S": text}}
    return {"events_z": {"B": zlib.compress(text.encode(), 6)}}


def _stored_events(item: Item) -> list[Event]:
    if "events_z" in item:
        return decode_events(zlib.decompress(item["events_z"]["B"]))
    return decode_events(item["events"]["S"])


def _after(error: ClientError, now: float) -> int | None:
    """The offset after the batch a put collided with (ReturnValuesOnConditionCheckFailure),
    if it has not expired."""
    item: Any = error.response.get("Item")
    if not item or "last" not in item or float(item["expires_at"]["N"]) <= now:
        return None
    return int(item["last"]["N"]) + 1


def _chunks(events: Sequence[Event]) -> list[list[Event]]:
    """Split a batch by count and JSON size; every chunk is stored as one item."""
    chunks: list[list[Event]] = [[]]
    size = 0
    for event in events:
        length = len(event.model_dump_json()) + 1
        if chunks[-1] and (len(chunks[-1]) >= MAX_EVENTS_PER_ITEM or size + length > MAX_ITEM_JSON_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(event)
        size += length
    return chunks


@dataclass(frozen=True)
class _KnownEnd:
    """What a writer remembers of an instance's log after its last append there."""

    last: int  # the last offset it stored
    learnt: float  # monotonic time
    #: Nobody else had appended between this writer's two latest appends, so the next
    #: append may well start right after `last`.
    held: bool


class DynamoDBEventLog:
    """The event log on the instance table.

    Where to append: a writer remembers the end of each log it appended to, and starts
    from it while that memory held the last time, because every writer's stale start costs
    a failed write and a read. Two kinds of writers share a log: the worker, which appends
    several batches per run and is mostly alone while it runs (its memory holds), and the
    admission of a prompt, which appends one ``submission_queued`` event while workers
    have appended since its last one (its memory would almost never hold). A writer whose
    memory failed reads the end before its next append instead, and trusts its memory
    again once such a read finds that nobody else appended meanwhile.
    """

    def __init__(self, client: Any, table: str, *, ttl_seconds: float = EVENT_TTL_SECONDS) -> None:
        self.client = client
        self.table = table
        self.ttl_seconds = ttl_seconds
        #: instance key -> what this writer remembers of its log
        self._ends: dict[str, _KnownEnd] = {}

    async def _newest(self, instance: InstanceRef) -> Item | None:
        """Where the newest batch ends and when it expires (not its events: a batch may
        hold up to `MAX_ITEM_JSON_BYTES` of them)."""
        items = (await offload(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :ev)",
            ExpressionAttributeValues={":pk": {"S": _pk(instance)}, ":ev": {"S": "EV#"}},
            ProjectionExpression="#last, expires_at",
            ExpressionAttributeNames={"#last": "last"},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        ))["Items"]
        return items[0] if items else None

    async def _read_end(self, instance: InstanceRef, now: float) -> int:
        """The next free offset, from the newest stored batch."""
        newest = await self._newest(instance)
        if newest is None:
            return epoch_base(now)
        last = int(newest["last"]["N"])
        if float(newest["expires_at"]["N"]) <= now:
            return max(last + 1, epoch_base(now))
        return last + 1

    async def end(self, instance: InstanceRef, *, now: float) -> int:
        newest = await self._newest(instance)
        if newest is None or float(newest["expires_at"]["N"]) <= now:
            return 0
        return int(newest["last"]["N"])

    def _remembered(self, instance: InstanceRef) -> _KnownEnd | None:
        known = self._ends.get(instance.key)
        if known is None or time.monotonic() - known.learnt >= END_CACHE_SECONDS:
            return None
        return known

    async def append(self, instance: InstanceRef, events: Sequence[Event], *, now: float) -> list[Event]:
        stored: list[Event] = []
        for chunk in _chunks(events) if events else []:
            stored.extend(await self._append_chunk(instance, chunk, now))
        return stored

    async def _append_chunk(self, instance: InstanceRef, events: list[Event], now: float) -> list[Event]:
        known = self._remembered(instance)
        first = known.last + 1 if known is not None and known.held else await self._read_end(instance, now)
        collided = False
        for attempt in range(MAX_APPEND_RETRIES):
            batch = [with_offset(e, first + n) for n, e in enumerate(events)]
            try:
                await offload(
                    self.client.put_item,
                    TableName=self.table,
                    Item={
                        "pk": {"S": _pk(instance)},
                        "sk": {"S": _ev(first)},
                        "last": {"N": str(batch[-1].offset)},
                        **_events_attribute(batch),
                        "expires_at": {"N": str(int(now + self.ttl_seconds))},
                    },
                    ConditionExpression="attribute_not_exists(sk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                collided = True
                # Writers that collide once tend to collide again: spread them out.
                await asyncio.sleep(random.uniform(0, min(0.1, 0.004 * 2**attempt)))
                # The batch in the way says where it ends: the next try goes right after it
                # (no read), unless it has expired (the log may have started a new epoch) or
                # this writer keeps landing on batches (it is far behind: read the end).
                after = _after(error, now) if attempt < MAX_HOPS else None
                first = after if after is not None else await self._read_end(instance, now)
                continue
            # Held: no collision, and the batch went right after this writer's previous one
            # (trusted, or read and found there). A first append has nothing to doubt.
            held = not collided and (known is None or first == known.last + 1)
            self._ends[instance.key] = _KnownEnd(batch[-1].offset, time.monotonic(), held)
            return batch
        raise LedgerError(f"could not append events to {instance} after {MAX_APPEND_RETRIES} tries (contention)")

    async def read(self, instance: InstanceRef, *, after: int, limit: int, now: float) -> EventPage:
        start = max(0, after + 1 - (MAX_EVENTS_PER_ITEM - 1))
        found: list[Event] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            "ExpressionAttributeValues": {
                ":pk": {"S": _pk(instance)},
                ":from": {"S": _ev(start)},
                ":to": {"S": "EV#~"},
            },
            "ConsistentRead": True,
            "Limit": 50,
        }
        while len(found) < limit:
            response = await offload(self.client.query, **request)
            for item in response["Items"]:
                if int(item["last"]["N"]) <= after or float(item["expires_at"]["N"]) <= now:
                    continue
                found.extend(e for e in _stored_events(item) if e.offset > after)
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        found = found[:limit]
        return EventPage(found, found[-1].offset if found else after)


class DynamoDBConnections:
    def __init__(self, client: Any, table: str, *, ttl_seconds: float = CONNECTION_TTL_SECONDS) -> None:
        self.client = client
        self.table = table
        self.ttl_seconds = ttl_seconds

    def _attributes(self, subscription: Subscription, now: float) -> Item:
        item: Item = {
            "instance": {"S": subscription.instance.key},
            "connection_id": {"S": subscription.connection_id},
            "subscribed": {"BOOL": subscription.subscribed},
            "expires_at": {"N": str(int(now + self.ttl_seconds))},
        }
        if subscription.session is not None:
            item["session"] = {"S": subscription.session}
        return item

    def _keys(self, subscription: Subscription) -> tuple[Item, Item]:
        by_id = {"pk": {"S": f"C#{subscription.connection_id}"}, "sk": {"S": "META"}}
        by_instance = {"pk": {"S": _pk(subscription.instance)}, "sk": {"S": f"CONN#{subscription.connection_id}"}}
        return by_id, by_instance

    async def add(self, subscription: Subscription, *, now: float) -> None:
        attributes = self._attributes(subscription, now)
        await offload(
            self.client.transact_write_items, TransactItems=[
                {"Put": {"TableName": self.table, "Item": {**key, **attributes}}} for key in self._keys(subscription)
            ]
        )

    async def subscribe(self, connection_id: str, *, session: str | None, now: float) -> Subscription | None:
        current = await self.get(connection_id)
        if current is None:
            return None
        updated = Subscription(connection_id, current.instance, session=session, subscribed=True)
        await self.add(updated, now=now)
        return updated

    async def get(self, connection_id: str) -> Subscription | None:
        item = (await offload(
            self.client.get_item, TableName=self.table, Key={"pk": {"S": f"C#{connection_id}"}, "sk": {"S": "META"}}, ConsistentRead=True
        )).get("Item")
        return _subscription(item) if item else None

    async def remove(self, connection_id: str) -> None:
        current = await self.get(connection_id)
        if current is None:
            return
        await offload(
            self.client.transact_write_items, TransactItems=[{"Delete": {"TableName": self.table, "Key": key}} for key in self._keys(current)]
        )

    async def subscribers(self, instance: InstanceRef) -> list[Subscription]:
        subscriptions: list[Subscription] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :conn)",
            "ExpressionAttributeValues": {":pk": {"S": _pk(instance)}, ":conn": {"S": "CONN#"}},
            "ConsistentRead": True,
        }
        now = time.time()
        while True:
            response = await offload(self.client.query, **request)
            for item in response["Items"]:
                if float(item["expires_at"]["N"]) > now and item["subscribed"]["BOOL"]:
                    subscriptions.append(_subscription(item))
            if "LastEvaluatedKey" not in response:
                return subscriptions
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _subscription(item: Item) -> Subscription:
    return Subscription(
        connection_id=item["connection_id"]["S"],
        instance=InstanceRef.parse(item["instance"]["S"]),
        session=item["session"]["S"] if "session" in item else None,
        subscribed=item["subscribed"]["BOOL"],
    )


class ApiGatewayPoster:
    """`post_to_connection` through a ``apigatewaymanagementapi`` client whose endpoint
    is the WebSocket stage's callback URL."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def post(self, connection_id: str, data: bytes) -> bool:
        try:
            await offload(self.client.post_to_connection, ConnectionId=connection_id, Data=data)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "GoneException":
                return False
            raise
        return True
