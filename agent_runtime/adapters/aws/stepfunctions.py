"""`Children` on Step Functions: one execution of the blocking-child state machine
(`agent_runtime.blocking`) per `task` call.

- `start`: an execution named after the call (``<call id>-<hash>``: the call id, made
  unique across submissions and within Step Functions' 80 characters), so starting it
  twice is refused by Step Functions instead of running the child twice.
- `accept`: the execution's wake-up of the child carries a task token; the worker keeps
  it in the child's partition (``TOKEN#<submission id>``), where every later attempt of
  the child finds it, so heartbeats and the report outlive one Lambda invocation.
- `heartbeat` / `report`: ``SendTaskHeartbeat`` while the child runs, ``SendTaskSuccess``
  (``{"text", "data"}``) or ``SendTaskFailure`` when it settles. The execution then
  records the outcome and wakes the parent.
- `outcome`: the outcome item the execution wrote (``CHILD#...``): a failure it recorded
  on its own (a missed heartbeat, the overall timeout) is found there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_items import _code, _key, _s
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.blocking import CHILD_STATUS_OK, child_result_key
from agent_runtime.children import TASK_TOOL, ChildLink, failure_part
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, SubmissionRecord
from agent_runtime.messages import ToolResultPart

log = logging.getLogger("agent_runtime")

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: Answers that mean the execution no longer waits for this token: nothing to do.
_TOKEN_GONE = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}


def execution_name(link: ChildLink) -> str:
    digest = hashlib.sha256(f"{link.parent.key}\n{link.parent_submission_id}".encode()).hexdigest()[:16]
    return f"{_NAME_UNSAFE.sub('_', link.call_id)[:63]}-{digest}"


class StepFunctionsChildren:
    """`stepfunctions` is a client, or a function that makes one on first use (the worker
    of an agent without subagents never pays for it)."""

    def __init__(self, *, stepfunctions: Any, state_machine_arn: str, dynamodb: Any, table: str) -> None:
        self._sfn = stepfunctions
        self.state_machine_arn = state_machine_arn
        self.dynamodb = dynamodb
        self.table = table

    @property
    def sfn(self) -> Any:
        if callable(self._sfn) and not hasattr(self._sfn, "start_execution"):
            self._sfn = self._sfn()
        return self._sfn

    async def start(self, link: ChildLink) -> None:
        execution_input = {
            "parent": {
                "instance": link.parent.key,
                "submission_id": link.parent_submission_id,
                "call_id": link.call_id,
            },
            "child": {"instance": link.child.key, "submission_id": link.child_submission_id},
        }
        try:
            await offload(
                self.sfn.start_execution, stateMachineArn=self.state_machine_arn, name=execution_name(link), input=json.dumps(execution_input)
            )
        except ClientError as error:
            if _code(error) != "ExecutionAlreadyExists":
                raise

    async def accept(self, child: InstanceRef, submission_id: str, token: str) -> None:
        await offload(self.dynamodb.put_item, TableName=self.table, Item={**_key(child, f"TOKEN#{submission_id}"), "token": _s(token)})

    async def _token(self, link: ChildLink) -> str | None:
        item = (await offload(
            self.dynamodb.get_item, TableName=self.table, Key=_key(link.child, f"TOKEN#{link.child_submission_id}"), ConsistentRead=True
        )).get("Item")
        return None if item is None else str(item["token"]["S"])

    async def heartbeat(self, link: ChildLink) -> None:
        token = await self._token(link)
        if token is not None:
            await self._answer(link, self.sfn.send_task_heartbeat, taskToken=token)

    async def report(self, link: ChildLink, child: SubmissionRecord) -> None:
        token = await self._token(link)
        if token is None:  # not woken by an execution (yet): the parent reads the record
            return
        if child.outcome is Outcome.completed and child.result is not None:
            output = json.dumps({"text": child.result.get("text", ""), "data": child.result.get("data")})
            await self._answer(link, self.sfn.send_task_success, taskToken=token, output=output)
            return
        error = child.error or {}
        await self._answer(
            link,
            self.sfn.send_task_failure,
            taskToken=token,
            error=str(error.get("type", child.outcome))[:256],
            cause=str(error.get("message", ""))[:32_768],
        )

    async def _answer(self, link: ChildLink, call: Any, **kwargs: Any) -> None:
        try:
            await offload(call, **kwargs)
        except ClientError as error:
            if _code(error) not in _TOKEN_GONE:
                raise
            log.info("the child's execution no longer waits", extra={"child": link.child.key, "code": _code(error)})

    async def outcome(self, link: ChildLink) -> ToolResultPart | None:
        key = child_result_key(link.parent.key, link.parent_submission_id, link.call_id)
        item = (await offload(
            self.dynamodb.get_item, TableName=self.table, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True
        )).get("Item")
        if item is None:
            return None
        if item["status"]["S"] == CHILD_STATUS_OK:
            result = json.loads(item["result"]["S"])
            data = result.get("data") if isinstance(result, dict) else None
            text = result.get("text", "") if isinstance(result, dict) else str(result)
            content = json.dumps(data, ensure_ascii=False) if data is not None else text
            return ToolResultPart(call_id=link.call_id, name=TASK_TOOL, content=content)
        return failure_part(link, item["error"]["S"], item["cause"]["S"])
