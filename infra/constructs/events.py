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

Scheduled effects are one-time EventBridge Scheduler schedules in ``schedule_group``,
created by the functions that run or admit work (`allow_schedules`): each invokes the
dispatch function (`deliver_schedules_to`) as ``scheduler_role`` with an event of
detail-type ``agent-runtime.effect``. A function may create, read and delete schedules in
that group only, and pass ``scheduler_role`` to Scheduler only; the role may invoke the
dispatch function and nothing else.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
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
from infra.nag import acknowledge, finding_resource

DISPATCH_DETAIL_TYPE = settings.DISPATCH_DETAIL_TYPE
SWEEP_EVERY = Duration.seconds(settings.SWEEP_INTERVAL_SECONDS)
#: What a function does with the schedules of its effects (updates are not needed: an
#: effect's schedule is created once, then fires or is deleted).
SCHEDULE_ACTIONS = ["scheduler:CreateSchedule", "scheduler:GetSchedule", "scheduler:DeleteSchedule"]


class Events(Construct):
    """``bus``, ``dispatch_rule`` (+ ``dispatch_failures``), ``sweeper_rule``,
    ``schedule_group`` and ``scheduler_role``. Targets are attached by `route_dispatch_to`,
    `sweep_with` and `deliver_schedules_to` once the functions exist."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
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
            description="Assumed by EventBridge Scheduler to deliver scheduled effects",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            ),
        )
        group = self.schedule_group.schedule_group_name
        self.schedules_arn = Stack.of(self).format_arn(
            service="scheduler",
            resource="schedule",
            resource_name=f"{group}/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
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

    def deliver_schedules_to(self, function_arn: str) -> None:
        """Let Scheduler, as ``scheduler_role``, invoke the function schedules target."""
        self.scheduler_role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function_arn])
        )

    def allow_schedules(self, role: iam.IRole) -> None:
        """Let `role` create, read and delete schedules in ``schedule_group``, and pass
        ``scheduler_role`` (to Scheduler only) as their execution role."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=SCHEDULE_ACTIONS, resources=[self.schedules_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            )
        )
        acknowledge(
            role,
            f"IAM5[Resource::{finding_resource(self, self.schedules_arn)}]",
            "Schedule names are chosen at run time (one per effect); the grant is limited to "
            "the runtime's one schedule group and to creating, reading and deleting.",
        )

    def schedule_environment(self, target_arn: str) -> dict[str, str]:
        """What a function that schedules effects is told (see `settings`)."""
        return {
            settings.ENV_SCHEDULE_GROUP: self.schedule_group.schedule_group_name,
            settings.ENV_SCHEDULER_ROLE_ARN: self.scheduler_role.role_arn,
            settings.ENV_EFFECT_TARGET_ARN: target_arn,
        }
