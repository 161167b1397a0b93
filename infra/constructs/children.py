"""Blocking children: the Step Functions state machine of `agent_runtime.blocking`."""

from __future__ import annotations

import json

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from agent_runtime.blocking import blocking_child_definition
from infra.config import StackConfig
from infra.constructs.common import log_group, removal_policy
from infra.nag import acknowledge


class BlockingChildren(Construct):
    """``state_machine``: one execution per blocking child call (execution name = call id).

    Its role may only send wake-ups to the queue and put the outcome item in the table;
    CloudWatch Logs delivery and X-Ray add the statements AWS requires for them.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        table: dynamodb.ITable,
        queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"))
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[table.table_arn])
        )
        self.log_group = log_group(self, "Logs", config=config)
        definition = blocking_child_definition(table=table.table_name, queue_url=queue.queue_url)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,  # callbacks need Standard
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
            role=self.role,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ERROR,
                # Task outputs are children's results (user data); errors name the state.
                include_execution_data=False,
            ),
            tracing_enabled=True,
            removal_policy=removal_policy(config),
        )
        acknowledge(
            self.state_machine,
            "SF1",
            "Logging level ERROR: every child's path is fixed (wake, record, wake parent) "
            "and its outcome is stored in the table; logging ALL events would log each "
            "of thousands of executions' transitions for no diagnostic gain.",
        )
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "CloudWatch Logs vended-log delivery (logs:CreateLogDelivery and friends) and "
            "X-Ray (xray:PutTraceSegments and friends) support no resource-level "
            "permissions; AWS requires Resource '*' for them. The task permissions are "
            "scoped to the queue and the table.",
        )
