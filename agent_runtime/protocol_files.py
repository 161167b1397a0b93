"""Wire models of the instance's files and variables (`agent_runtime.protocol` has the rest).

    PUT    /agents/{name}/{id}/files/{path+}          raw body (at most FILE_BODY_MAX_BYTES); 200 FileView
    GET    /agents/{name}/{id}/files/{path+}          the bytes; 307 to a presigned S3 URL when bigger than
                                                      FILE_INLINE_MAX_BYTES (or with ?download=url)
    DELETE /agents/{name}/{id}/files/{path+}          204; 404 when there is no such file
    GET    /agents/{name}/{id}/files?prefix=&after=&limit=   FilesPage
    POST   /agents/{name}/{id}/uploads                UploadRequest -> 201 UploadTicket (a presigned S3 PUT)
    POST   /agents/{name}/{id}/uploads/{upload_id}/complete  200 FileView: the uploaded object becomes the file
    GET    /agents/{name}/{id}/variables              VariablesList (a secret's value is never shown)
    PUT    /agents/{name}/{id}/variables/{variable}   VariablePut -> 200 VariableView
    DELETE /agents/{name}/{id}/variables/{variable}   204; 404 when it was not set
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.events import iso
from agent_runtime.files import PAGE_MAX, FileInfo, Upload
from agent_runtime.protocol import Timestamp, _Body, _Query

#: A file sent through the HTTP API: API Gateway takes 10 MB and a Lambda's synchronous
#: payload 6 MB, which base64 (binary bodies) inflates by a third. Bigger: `POST .../uploads`.
FILE_BODY_MAX_BYTES = 4 * 1024 * 1024
#: `GET .../files/{path}` answers with the bytes up to this size, else redirects to S3.
FILE_INLINE_MAX_BYTES = 4 * 1024 * 1024


class FileView(BaseModel):
    model_config = ConfigDict(defer_build=True)
    path: str
    size: int
    media_type: str
    sha256: str
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, info: FileInfo) -> FileView:
        return cls(
            path=info.path,
            size=info.size,
            media_type=info.media_type,
            sha256=info.sha256,
            created_at=iso(info.created_at) or "",
            updated_at=iso(info.updated_at) or "",
        )


class FilesPage(BaseModel):
    model_config = ConfigDict(defer_build=True)
    files: list[FileView]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last one.")


class FilesQuery(_Query):
    prefix: str = Field("/", description="List files under this folder (recursively).")
    after: str | None = Field(None, description="The `next` of the previous page.")
    limit: int = Field(100, ge=1, le=PAGE_MAX)


class FileQuery(_Query):
    download: str | None = Field(None, description="`url`: always answer 307 with a presigned S3 URL.")


class UploadRequest(_Body):
    path: str = Field(description="Where the file goes, like /attachments/report.pdf.")
    media_type: str = Field(description="The file's media type; the upload must send it as Content-Type.")
    size: int = Field(ge=0, description="The exact size in bytes the upload will send.")


class UploadTicket(BaseModel):
    model_config = ConfigDict(defer_build=True)
    upload_id: str
    url: str = Field(description="Send the bytes here, with `method` and `headers`, before `expires_at`.")
    method: str
    headers: dict[str, str]
    expires_at: Timestamp
    complete: str = Field(description="Then POST here (the API's path) to make the upload the file.")

    @classmethod
    def of(cls, upload: Upload, complete: str) -> UploadTicket:
        return cls(
            upload_id=upload.upload_id,
            url=upload.url,
            method=upload.method,
            headers=dict(upload.headers),
            expires_at=iso(upload.expires_at) or "",
            complete=complete,
        )


class VariablePut(_Body):
    value: str = Field(description="The value; a secret's is encrypted and never shown again.")


class VariableView(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str
    secret: bool
    required: bool
    description: str
    set: bool = Field(description="Whether the instance has a value (a default does not count).")
    value: str | None = Field(None, description="A plain variable's value when set; never a secret's.")
    updated_at: Timestamp | None = None


class VariablesList(BaseModel):
    model_config = ConfigDict(defer_build=True)
    variables: list[VariableView]


__all__ = [
    "FILE_BODY_MAX_BYTES",
    "FILE_INLINE_MAX_BYTES",
    "FileQuery",
    "FileView",
    "FilesPage",
    "FilesQuery",
    "UploadRequest",
    "UploadTicket",
    "VariablePut",
    "VariableView",
    "VariablesList",
]
