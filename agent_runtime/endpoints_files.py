"""The file and variable routes' work, once the agent's `route` hook lets a request through
(`agent_runtime.protocol_files` lists the routes and their wire models).

A file route's path parameter ``path`` is the file's absolute path (``/attachments/a.png``);
its raw body is `RouteRequest.raw`. A download answers with the bytes up to
`FILE_INLINE_MAX_BYTES`, beyond that (or with ``?download=url``) a 307 to a presigned S3
URL valid for five minutes.
"""

from __future__ import annotations

from agent_runtime.errors import PayloadTooLarge
from agent_runtime.events import iso
from agent_runtime.protocol import parse_body, parse_query
from agent_runtime.protocol_files import (
    FILE_BODY_MAX_BYTES,
    FILE_INLINE_MAX_BYTES,
    FileQuery,
    FilesPage,
    FilesQuery,
    FileView,
    UploadRequest,
    UploadTicket,
    VariablePut,
    VariablesList,
    VariableView,
)
from agent_runtime.routing import RouteRequest, RouteResponse, json_response
from agent_runtime.service import Service
from agent_runtime.variables import VariableInfo


def _view(info: VariableInfo) -> VariableView:
    return VariableView(
        name=info.name,
        secret=info.secret,
        required=info.required,
        description=info.description,
        set=info.set,
        value=None if info.secret else info.value,
        updated_at=iso(info.updated_at),
    )


async def put_file(service: Service, req: RouteRequest) -> RouteResponse:
    if len(req.raw) > FILE_BODY_MAX_BYTES:
        raise PayloadTooLarge(
            f"a file sent through the API is at most {FILE_BODY_MAX_BYTES} bytes; use POST .../uploads for bigger ones",
            details={"limit": FILE_BODY_MAX_BYTES, "size": len(req.raw)},
        )
    info = await service.put_file(req.params["name"], req.params["id"], req.params["path"], req.raw, req.headers.get("content-type"))
    return json_response(FileView.of(info))


async def get_file(service: Service, req: RouteRequest) -> RouteResponse:
    name, instance_id, path = req.params["name"], req.params["id"], req.params["path"]
    query = parse_query(FileQuery, req.query)
    info = await service.stat_file(name, instance_id, path)
    if query.download == "url" or info.size > FILE_INLINE_MAX_BYTES:
        url = await service.file_url(name, instance_id, path)
        if url is not None:
            return RouteResponse(307, "", {"location": url, "cache-control": "no-store"})
    info, data = await service.read_file(name, instance_id, path)
    headers = {"content-type": info.media_type, "etag": f'"{info.sha256}"', "cache-control": "no-store"}
    return RouteResponse(200, data, headers)


async def delete_file(service: Service, req: RouteRequest) -> RouteResponse:
    await service.delete_file(req.params["name"], req.params["id"], req.params["path"])
    return RouteResponse(204, "", {})


async def list_files(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(FilesQuery, req.query)
    page = await service.list_files(req.params["name"], req.params["id"], prefix=query.prefix, after=query.after, limit=query.limit)
    return json_response(FilesPage(files=[FileView.of(f) for f in page.files], next=page.next_after))


async def start_upload(service: Service, req: RouteRequest) -> RouteResponse:
    body = parse_body(UploadRequest, req.body)
    name, instance_id = req.params["name"], req.params["id"]
    upload = await service.start_upload(name, instance_id, body.path, media_type=body.media_type, size=body.size)
    complete = f"/agents/{name}/{instance_id}/uploads/{upload.upload_id}/complete"
    return json_response(UploadTicket.of(upload, complete), status=201)


async def complete_upload(service: Service, req: RouteRequest) -> RouteResponse:
    info = await service.complete_upload(req.params["name"], req.params["id"], req.params["upload_id"])
    return json_response(FileView.of(info))


async def list_variables(service: Service, req: RouteRequest) -> RouteResponse:
    listed = await service.variables(req.params["name"], req.params["id"])
    return json_response(VariablesList(variables=[_view(i) for i in listed]))


async def put_variable(service: Service, req: RouteRequest) -> RouteResponse:
    body = parse_body(VariablePut, req.body)
    info = await service.set_variable(req.params["name"], req.params["id"], req.params["variable"], body.value)
    return json_response(_view(info))


async def delete_variable(service: Service, req: RouteRequest) -> RouteResponse:
    await service.delete_variable(req.params["name"], req.params["id"], req.params["variable"])
    return RouteResponse(204, "", {})


__all__ = [
    "complete_upload",
    "delete_file",
    "delete_variable",
    "get_file",
    "list_files",
    "list_variables",
    "put_file",
    "put_variable",
    "start_upload",
]
