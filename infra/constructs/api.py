"""The HTTP API (and, when its handler exists, the WebSocket API) in front of the functions.

Authorization is the application's: each agent's ``route`` / ``websocket`` hook decides
inside the handler (DESIGN section 1), so API Gateway passes every request through.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StackConfig
from infra.constructs.common import log_group
from infra.nag import acknowledge, finding_resource

GET, POST, PUT, DELETE = (
    apigwv2.HttpMethod.GET,
    apigwv2.HttpMethod.POST,
    apigwv2.HttpMethod.PUT,
    apigwv2.HttpMethod.DELETE,
)

# Every route the HTTP handler serves; adding one is one line. File bodies need no
# binary media setting: an HTTP API (payload 2.0) hands the function any body that is not
# text base64-encoded with ``isBase64Encoded``, and returns a reply so marked as bytes.
HTTP_ROUTES: tuple[tuple[apigwv2.HttpMethod, str], ...] = (
    (POST, "/agents/{name}/{id}"),
    (GET, "/agents/{name}/{id}/submissions/{submission_id}"),
    (GET, "/agents/{name}/{id}/submissions/{submission_id}/trace"),
    (POST, "/agents/{name}/{id}/dispatch"),
    (GET, "/agents/{name}/{id}/sessions/{session}/messages"),
    (GET, "/agents/{name}/{id}/events"),
    (POST, "/agents/{name}/{id}/abort"),
    (GET, "/agents/{name}/{id}/children"),
    (GET, "/agents/{name}/{id}/children/{ref}/submissions/{submission_id}"),
    (GET, "/agents/{name}/{id}/children/{ref}/sessions/{session}/messages"),
    (GET, "/agents/{name}/{id}/children/{ref}/events"),
    (GET, "/agents/{name}/{id}/files"),
    (PUT, "/agents/{name}/{id}/files/{path+}"),
    (GET, "/agents/{name}/{id}/files/{path+}"),
    (DELETE, "/agents/{name}/{id}/files/{path+}"),
    (POST, "/agents/{name}/{id}/uploads"),
    (POST, "/agents/{name}/{id}/uploads/{upload_id}/complete"),
    (GET, "/agents/{name}/{id}/variables"),
    (PUT, "/agents/{name}/{id}/variables/{variable}"),
    (DELETE, "/agents/{name}/{id}/variables/{variable}"),
    (GET, "/agents/{name}/{id}/effects"),
    (DELETE, "/agents/{name}/{id}/effects/{effect_id}"),
    (GET, "/agents"),
    (GET, "/agents/{name}"),
    (GET, "/agents/{name}/instances"),
    (GET, "/agents/{name}/{id}/submissions"),
    (GET, "/console"),
    (GET, "/console/{proxy+}"),
    (GET, "/openapi.json"),
    (GET, "/health"),
)

WEBSOCKET_STAGE = "live"

_AUTH_IN_APP = (
    "Authorization is the application's: each agent's route/websocket hook checks the "
    "request inside the handler (DESIGN section 1); an API Gateway authorizer would "
    "duplicate it without knowing the agent's rules."
)


class Api(Construct):
    """``http_api``, ``http_stage`` (``$default``, access-logged) and ``http_url``; after
    `add_websocket`: ``websocket`` (a `WebSocketSurface`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        http_handler: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.websocket: WebSocketSurface | None = None
        cors = (
            apigwv2.CorsPreflightOptions(
                allow_origins=list(config.cors_origins),
                allow_methods=[
                    apigwv2.CorsHttpMethod.GET,
                    apigwv2.CorsHttpMethod.POST,
                    apigwv2.CorsHttpMethod.PUT,
                    apigwv2.CorsHttpMethod.DELETE,
                    apigwv2.CorsHttpMethod.OPTIONS,
                ],
                allow_headers=["authorization", "content-type", "idempotency-key"],
                max_age=Duration.hours(1),
            )
            if config.cors_origins
            else None
        )
        self.http_api = apigwv2.HttpApi(
            self, "Http", create_default_stage=False, cors_preflight=cors
        )
        self.http_access_logs = log_group(self, "HttpAccessLogs", config=config)
        self.http_stage = apigwv2.HttpStage(
            self,
            "HttpDefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=_AccessLogs(self.http_access_logs, _ACCESS_LOG_FIELDS),
            throttle=_throttle(config),
        )
        integration = integrations.HttpLambdaIntegration("Handler", http_handler)
        for method, path in HTTP_ROUTES:
            routes = self.http_api.add_routes(path=path, methods=[method], integration=integration)
            for route in routes:
                acknowledge(route, "APIG4", _AUTH_IN_APP)
        self.http_url = self.http_stage.url

    def add_websocket(self, handler: lambda_.IFunction) -> WebSocketSurface:
        """Create the WebSocket API (stage ``live``; ``$connect``, ``$disconnect`` and
        ``$default`` to `handler`). Called once ``functions.websocket`` exists."""
        if self.websocket is not None:
            raise ValueError("the WebSocket API already exists")
        self.websocket = WebSocketSurface(self, "WebSocket", config=self._config, handler=handler)
        return self.websocket


def _throttle(config: StackConfig) -> apigwv2.ThrottleSettings:
    """The stage's request rate limits: a flood of prompts gets 429s, not a bill."""
    return apigwv2.ThrottleSettings(rate_limit=config.api_rate_limit, burst_limit=config.api_burst_limit)


class WebSocketSurface(Construct):
    """``api``, ``stage`` (``live``), ``url`` (wss://) and ``callback_url`` (the
    ``@connections`` management endpoint)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        handler: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)

        def route(name: str) -> apigwv2.WebSocketRouteOptions:
            return apigwv2.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration(f"{name}Integration", handler)
            )

        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            connect_route_options=route("Connect"),
            disconnect_route_options=route("Disconnect"),
            default_route_options=route("Default"),
        )
        self.access_logs = log_group(self, "AccessLogs", config=config)
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=WEBSOCKET_STAGE,
            auto_deploy=True,
            access_log_settings=_AccessLogs(self.access_logs, _WEBSOCKET_LOG_FIELDS),
            throttle=_throttle(config),
        )
        acknowledge(self.api, "APIG4", _AUTH_IN_APP)
        self.url = self.stage.url
        self.callback_url = self.stage.callback_url

    def grant_manage_connections(self, role: iam.IRole) -> None:
        """Allow posting to, reading and closing connections of the ``live`` stage."""
        connections = Stack.of(self).format_arn(
            service="execute-api",
            resource=self.api.api_id,
            resource_name=f"{WEBSOCKET_STAGE}/*/@connections/*",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["execute-api:ManageConnections"], resources=[connections])
        )
        acknowledge(
            role,
            f"IAM5[Resource::{finding_resource(self, connections)}]",
            "Connection ids are assigned by API Gateway at $connect time; the grant is "
            "limited to the @connections API of this WebSocket API's live stage.",
        )


# One JSON object per request, so CloudWatch Logs Insights can query the fields.
_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latency": "$context.integrationLatency",
    "error": "$context.error.message",
    "integrationError": "$context.integrationErrorMessage",
}
_WEBSOCKET_LOG_FIELDS = {
    **_ACCESS_LOG_FIELDS,
    "eventType": "$context.eventType",
    "connectionId": "$context.connectionId",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """Access logging of a stage to `group`, as JSON lines of `fields`."""

    def __init__(self, group: logs.ILogGroup, fields: dict[str, str]) -> None:
        self._destination = apigwv2.LogGroupLogDestination(group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(fields))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format
