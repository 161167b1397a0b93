"""The instance's files and variables, as the service offers them (HTTP, SDK, admission).

Files go to the `Files` port unfenced (a caller's write is not an attempt's). Variables
are declared by the agent (`Variable`, `Secret`): only declared names may be set, a
declared `Secret`'s value is stored encrypted and never shown again, and a prompt to an
instance missing a required one is refused (400 naming them). Declarations are read
from the agent's configuration as defined (its `init` probed once per process), so the
service still never runs `init` per instance.

Attachments of a prompt are checked before admission: each named path must exist
(`FileNotFound`, 404), at most `MAX_ATTACHMENTS` files per message, and inline images
(base64) are stored as files first, under ``/attachments/<sha256 prefix>.<ext>``. The
message then refers to them by path (`FilePart`); their bytes never enter the ledger.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes

from agent_runtime.definition import PROBE_ID, AgentConfig, AgentContext
from agent_runtime.errors import FileNotFound, InvalidInput, NotFound
from agent_runtime.files import FileInfo, FilePage, Upload, media_type_for, validate_path
from agent_runtime.ids import InstanceRef
from agent_runtime.loop.inputs import file_part
from agent_runtime.messages import FilePart
from agent_runtime.parts import Parts
from agent_runtime.variables import (
    Declared,
    VariableInfo,
    describe,
    find_declared,
    missing_required,
)

#: Files one message may attach (named or inline).
MAX_ATTACHMENTS = 20
INLINE_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class MissingVariables(InvalidInput):
    """The instance lacks values of variables its agent requires."""

    type = "missing_variables"


class UnknownVariable(InvalidInput):
    """The agent declares no variable of that name."""

    type = "unknown_variable"


class VariableNotSet(NotFound):
    """The instance has no value for that variable."""

    type = "variable_not_set"


class InstanceData(Parts):
    # --- files ---------------------------------------------------------------------

    async def put_file(self, agent: str, instance_id: str, path: str, data: bytes, media_type: str | None) -> FileInfo:
        instance = self.instance(agent, instance_id)
        return await self.stores.files.write(instance, path, data, media_type=media_type, now=self.clock())

    async def read_file(self, agent: str, instance_id: str, path: str) -> tuple[FileInfo, bytes]:
        instance = self.instance(agent, instance_id)
        info = await self._stat(instance, path)
        return info, await self.stores.files.read(instance, path)

    async def stat_file(self, agent: str, instance_id: str, path: str) -> FileInfo:
        return await self._stat(self.instance(agent, instance_id), path)

    async def file_url(self, agent: str, instance_id: str, path: str) -> str | None:
        """A presigned URL of the file's bytes (None where the store has no URLs)."""
        instance = self.instance(agent, instance_id)
        await self._stat(instance, path)
        return await self.stores.files.download_url(instance, path)

    async def list_files(
        self, agent: str, instance_id: str, *, prefix: str = "/", after: str | None = None, limit: int = 100
    ) -> FilePage:
        instance = self.instance(agent, instance_id)
        return await self.stores.files.list(instance, prefix, after=after, limit=limit)

    async def delete_file(self, agent: str, instance_id: str, path: str) -> None:
        instance = self.instance(agent, instance_id)
        if not await self.stores.files.delete(instance, path):
            raise FileNotFound(f"{instance} has no file {path}", details={"path": path})

    async def start_upload(self, agent: str, instance_id: str, path: str, *, media_type: str, size: int) -> Upload:
        instance = self.instance(agent, instance_id)
        return await self.stores.files.presign_upload(instance, path, media_type=media_type, size=size, now=self.clock())

    async def complete_upload(self, agent: str, instance_id: str, upload_id: str) -> FileInfo:
        instance = self.instance(agent, instance_id)
        return await self.stores.files.complete_upload(instance, upload_id, now=self.clock())

    async def _stat(self, instance: InstanceRef, path: str) -> FileInfo:
        info = await self.stores.files.stat(instance, validate_path(path))
        if info is None:
            raise FileNotFound(f"{instance} has no file {path}", details={"path": path})
        return info

    async def attach(
        self, instance: InstanceRef, paths: list[str], images: list[tuple[str, str]] | None = None
    ) -> list[FilePart]:
        """The message parts for a prompt's attachments: named files (which must exist)
        and inline images ``(media_type, base64)``, stored first."""
        images = images or []
        if len(paths) + len(images) > MAX_ATTACHMENTS:
            raise InvalidInput(
                f"a message may attach at most {MAX_ATTACHMENTS} files",
                details={"field": "attachments", "limit": MAX_ATTACHMENTS},
            )
        parts = [file_part(await self._stat(instance, path)) for path in paths]
        decoded: list[tuple[str, bytes]] = []
        for media_type, encoded in images:  # all checked before any is stored
            if media_type not in INLINE_IMAGE_TYPES:
                raise InvalidInput(
                    f"inline images are {', '.join(INLINE_IMAGE_TYPES)}; got {media_type!r}",
                    details={"field": "images"},
                )
            try:
                decoded.append((media_type, base64.b64decode(encoded, validate=True)))
            except (binascii.Error, ValueError):
                raise InvalidInput("an inline image is not valid base64", details={"field": "images"}) from None
        for media_type, data in decoded:
            extension = mimetypes.guess_extension(media_type) or ""
            path = f"/attachments/{hashlib.sha256(data).hexdigest()[:16]}{extension}"
            info = await self.stores.files.write(instance, path, data, media_type=media_type_for(path, media_type), now=self.clock())
            parts.append(file_part(info))
        return parts

    # --- variables -----------------------------------------------------------------

    def probe(self, agent: str) -> AgentConfig:
        """`agent`'s configuration as defined (its `init` probed once per process): what
        admission reads of it (declared variables, the concurrency policy)."""
        cache: dict[str, AgentConfig] = self.__dict__.setdefault("_probed", {})
        if agent not in cache:
            definition = self.registry.get(agent).definition
            cache[agent] = definition.configure(AgentContext(id=PROBE_ID, agent=agent))
        return cache[agent]

    def declared(self, agent: str) -> tuple[Declared, ...]:
        """The variables `agent` declares."""
        return self.probe(agent).variables

    async def variables(self, agent: str, instance_id: str) -> list[VariableInfo]:
        instance = self.instance(agent, instance_id)
        return describe(self.declared(agent), await self.stores.variables.list(instance))

    async def set_variable(self, agent: str, instance_id: str, name: str, value: str) -> VariableInfo:
        instance = self.instance(agent, instance_id)
        declaration = self._declaration(agent, name)
        await self.stores.variables.put(instance, name, value, secret=declaration.secret)
        listed = describe([declaration], [i for i in await self.stores.variables.list(instance) if i.name == name])
        return listed[0]

    async def delete_variable(self, agent: str, instance_id: str, name: str) -> None:
        instance = self.instance(agent, instance_id)
        self._declaration(agent, name)
        if not await self.stores.variables.delete(instance, name):
            raise VariableNotSet(f"{name} is not set on {instance}", details={"name": name})

    def _declaration(self, agent: str, name: str) -> Declared:
        declared = self.declared(agent)
        found = find_declared(declared, name)
        if found is None:
            names = ", ".join(d.name for d in declared) or "none"
            raise UnknownVariable(f"agent {agent!r} declares no variable {name!r} (declared: {names})", details={"name": name})
        return found

    async def check_required(self, instance: InstanceRef) -> None:
        """Refuse work for an instance that lacks a required variable."""
        declared = self.declared(instance.agent)
        if not any(d.required for d in declared):
            return
        stored = {i.name for i in await self.stores.variables.list(instance)}
        missing = missing_required(declared, stored)
        if missing:
            raise MissingVariables(
                f"set the required variable(s) first: {', '.join(missing)}",
                details={"field": "variables", "missing": missing},
            )


__all__ = ["INLINE_IMAGE_TYPES", "MAX_ATTACHMENTS", "InstanceData", "MissingVariables", "UnknownVariable", "VariableNotSet"]
