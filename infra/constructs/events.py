"""EventBridge: the dispatch bus and rule, the sweeper's schedule, and timers.

Dispatch events (``detail-type`` = ``agent-runtime.dispatch``, from any source) on the
runtime's bus are admitted as submissions by the dispatch function
(``functions/dispatch_events.py``, which documents what it drops and what it retries).
Their ``detail`` (`agent_runtime.protocol.DispatchEventDetail`)::

    {
      "agent": "support-assistant",   # agent name (required)
      "id": "ticket-42",              # instance id (required)
      "session": "default",           # session name (optional, "default")
      "input": "..." | {...},         # the prompt or structured input (required)
      "dispatch_id": "evt-7c1e"       # idempotency key (optional; else the event id)
    }

Timers, when they come, are one-off EventBridge Scheduler schedules in ``schedule_group``
that send a wake-up to the FIFO queue as ``scheduler_role``. No code creates schedules
yet, so no function is granted Scheduler actions or may pass ``scheduler_role``: both
resources exist but have no user until timers are implemented.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from agent_runtime import settings
from infra.config import StackConfig
from infra.constructs.common import removal_policy
from infra.nag import acknowledge

DISPATCH_DETAIL_TYPE = settings.DISPATCH_DETAIL_TYPE
SWEEP_EVERY = Duration.seconds(settings.SWEEP_INTERVAL_SECONDS)


class Events(Construct):
    """``bus``, ``dispatch_rule`` (+ ``dispatch_failures``), ``sweeper_rule``,
    ``schedule_group`` and ``scheduler_role``. Targets are attached by `route_dispatch_to`
    and `sweep_with` once the functions exist."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, queue: sqs.IQueue
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus")
        self.dispatch_rule = events.Rule(
            self,
            "DispatchRule",
            event_bus=self.bus,
            description="Admit agent-runtime.dispatch events as submissions",
            event_pattern=events.EventPattern(detail_type=[DISPATCH_DETAIL_TYPE]),
        )
        # Events EventBridge could not deliver, or the function failed on after its retries.
        self.dispatch_failures = sqs.Queue(
            self,
            "DispatchFailures",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        acknowledge(
            self.dispatch_failures,
            "SQS3",
            "This queue is itself a dead-letter queue (of the dispatch rule's target and of "
            "the dispatch function's asynchronous invocations); cdk-nag only recognises "
            "dead-letter queues named in another queue's redrive policy.",
        )
        self.sweeper_rule = events.Rule(
            self,
            "SweeperSchedule",
            description="Re-wake instances whose work is queued but idle",
            schedule=events.Schedule.rate(SWEEP_EVERY),
        )

        self.schedule_group = scheduler.ScheduleGroup(
            self, "Timers", removal_policy=removal_policy(config)
        )
        account = Stack.of(self).account
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            description="Assumed by EventBridge Scheduler to deliver timer wake-ups",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            ),
        )
        self.scheduler_role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn])
        )

    def route_dispatch_to(self, function: lambda_.IFunction) -> None:
        """Deliver dispatch events to `function`; an event that still fails after Lambda's
        asynchronous retries is kept in ``dispatch_failures`` rather than dropped."""
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dispatch_failures), retry_attempts=2
        )
        self.dispatch_rule.add_target(
            targets.LambdaFunction(
                function,
                dead_letter_queue=self.dispatch_failures,
                max_event_age=Duration.hours(24),
                retry_attempts=20,
            )
        )

    def sweep_with(self, function: lambda_.IFunction) -> None:
        self.sweeper_rule.add_target(targets.LambdaFunction(function, retry_attempts=0))
