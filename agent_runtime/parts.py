"""What the service and the worker share: the agents, the ports, the clock, settings.

`Service` (admission and reads) and `Worker` (the drain) each take these; `Runtime`
is both over the same parts, which the Lambda bootstrap, the local stack and tests use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agent_runtime import events as ev
from agent_runtime import settings
from agent_runtime.adapters.memory_events import MemoryEventLog
from agent_runtime.definition import AgentConfig, AgentContext
from agent_runtime.effects import with_module_effects
from agent_runtime.errors import AgentDefinitionError, DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Admission, Draft, SubmissionRecord
from agent_runtime.loop.child_runs import ChildRuns
from agent_runtime.ports import Children, EventLog, Stores, WakeUps
from agent_runtime.registry import Registry
from agent_runtime.streaming import Broadcaster, EventStream, event_fields
from agent_runtime.task_overrides import with_overrides

log = logging.getLogger("agent_runtime")

if TYPE_CHECKING:
    from agent_runtime.loop.attempt import Checkpoint


class Parts:
    def __init__(
        self,
        *,
        registry: Registry,
        stores: Stores,
        wakeups: WakeUps,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = settings.LEASE_SECONDS,
        checkpoint: Checkpoint | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        events: EventLog | None = None,
        broadcaster: Broadcaster | None = None,
        stream_options: dict[str, Any] | None = None,
        abort_poll_seconds: float | None = None,
        children: Children | None = None,
    ) -> None:
        self.registry = registry
        self.stores = stores
        self.wakeups = wakeups
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.checkpoint = checkpoint
        self.env = env
        self.sleep = sleep
        self.events: EventLog = events if events is not None else MemoryEventLog()
        self.broadcaster = broadcaster
        self.stream_options = stream_options or {}
        self.abort_poll_seconds = settings.abort_poll_seconds() if abort_poll_seconds is None else abort_poll_seconds
        #: The blocking children's driver; without one, agents are offered no `task` tool.
        self.children = children
        self.child_runs = ChildRuns(children, stores.ledger, wakeups) if children is not None else None

    async def admit(self, instance: InstanceRef, draft: Draft) -> Admission:
        """Admit `draft` to the instance's ledger, wake the instance, say it is queued."""
        admission = await self.stores.ledger.admit(instance, draft, now=self.clock())
        # Sent on replays too: if the first wake-up was lost the retry re-sends it;
        # SQS deduplicates by submission id.
        await self.wakeups.send(instance, reason="admit", dedupe_id=admission.record.id)
        if not admission.replayed:
            record = admission.record
            event = ev.SubmissionQueued(
                **event_fields(instance, self.clock(), record.session, record.id), kind=record.kind, sequence=record.sequence
            )
            await self.publish(instance, [event])
        return admission

    async def publish(self, instance: InstanceRef, events: list[ev.Event]) -> None:
        """Append events outside a run (admission, abort of waiting work) and show them
        to watchers. The ledger is the truth: a failure here is logged, not raised."""
        try:
            stored = await self.events.append(instance, events, now=self.clock())
            if self.broadcaster is not None:
                await self.broadcaster.publish(instance, stored)
        except Exception:
            log.warning("could not append an event", extra={"instance": instance.key}, exc_info=True)

    def instance(self, agent: str, instance_id: str) -> InstanceRef:
        """The instance, after checking its name and id (400) and that the agent exists (404)."""
        ref = InstanceRef(agent, instance_id)
        self.registry.get(agent)  # AgentNotFound before anything is written
        return ref

    def context(self, instance: InstanceRef) -> AgentContext:
        """What `init(ctx)` and callable instructions see: the runtime's `env` when given."""
        if self.env is None:
            return AgentContext(id=instance.id, agent=instance.agent)
        return AgentContext(id=instance.id, agent=instance.agent, env=self.env)

    def config(self, instance: InstanceRef) -> AgentConfig:
        """The agent's configuration for this instance: runs the user's `init(ctx)`.
        A bad configuration raises `AgentDefinitionError`, naming the agent and the field."""
        registered = self.registry.get(instance.agent)
        try:
            config = registered.definition.configure(self.context(instance))
            return with_module_effects(config, registered.effects)
        except DefinitionError as exc:
            raise AgentDefinitionError(instance.agent, exc.field, exc.message) from exc

    def config_for(self, record: SubmissionRecord) -> AgentConfig:
        """The configuration `record` runs with: the instance's, with what the call that
        started a child changes for it (`agent_runtime.task_overrides`)."""
        config = self.config(record.ref)
        try:
            return with_overrides(config, record)
        except DefinitionError as exc:
            raise AgentDefinitionError(record.ref.agent, exc.field, exc.message) from exc

    def stream(self, instance: InstanceRef) -> EventStream:
        return EventStream(instance, self.events, clock=self.clock, broadcaster=self.broadcaster, **self.stream_options)
