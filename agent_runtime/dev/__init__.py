"""The local stack (`agent-runtime dev`): moto, an API Gateway emulator and an SQS poller.

- ``stack``: `LocalStack` (the composition) and `run_dev` (the command's body)
- ``aws``: moto on loopback, the process's AWS environment, provisioning
- ``persistence``: the state folder: a snapshot (``snapshot_storage``, ``snapshot_events``,
  ``snapshot_sqs``; files in ``state_files``) and the journal of writes since it (``journal``;
  ``journal_wsgi``, the gate in front of moto that journals each write before answering)
- ``apigw_http``: the HTTP API emulator; ``apigw_events``: 2.0 events, routes, responses
- ``apigw_websocket``: the WebSocket API emulator; ``apigw_websocket_events``: its Lambda
  events and the ``$connect`` answer; ``apigw_management``: its ``@connections`` API over HTTP
- ``sqs_poller``: the SQS event source, with partial batch responses
- ``async_invoke``: asynchronous invocation (the dispatch rule's and schedules' target)
- ``scheduler``: EventBridge Scheduler's one-time schedules, fired on time
- ``lambda_runtime``: Lambda-like invocation (handler import, context, timeout, marshalling)
- ``lambda_environment``: execution environments as child processes (warm, reused, killed)
"""

from __future__ import annotations

from agent_runtime.dev.apigw_http import HttpApiEmulator, HttpApiError
from agent_runtime.dev.apigw_websocket import WebSocketApiEmulator, WebSocketApiError
from agent_runtime.dev.aws import LocalAws, LocalAwsError
from agent_runtime.dev.lambda_runtime import HandlerImportError, LambdaContext, LocalFunction
from agent_runtime.dev.persistence import LocalState, LocalStateError, RestoreSummary
from agent_runtime.dev.sqs_poller import SqsPoller
from agent_runtime.dev.stack import LocalStack, run_dev

__all__ = [
    "HandlerImportError",
    "HttpApiEmulator",
    "HttpApiError",
    "LambdaContext",
    "LocalAws",
    "LocalAwsError",
    "LocalFunction",
    "LocalStack",
    "LocalState",
    "LocalStateError",
    "RestoreSummary",
    "SqsPoller",
    "WebSocketApiEmulator",
    "WebSocketApiError",
    "run_dev",
]
