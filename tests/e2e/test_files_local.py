"""Files and secrets on the local stack, over real HTTP: a PNG uploaded through the API is
attached to a prompt, a tool reads the same bytes, the history names the path and holds
none of the bytes, the download returns them; a 20 MB presigned upload through the moto
server appears in the listing; a secret set over HTTP reaches the tool and nothing else."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx

from tests.e2e.test_local_stack import ok, prompt, settled

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
TOKEN = "crm-secret-5d1f7a9e"


def test_an_uploaded_png_reaches_a_tool_and_a_secret_stays_hidden(
    stack: Any, client: httpx.Client, instance: str, capfd: Any
) -> None:
    base = f"/agents/filer/{instance}"
    stored = ok(client.put(f"{base}/files/attachments/receipt.png", content=PNG, headers={"content-type": "image/png"}))
    digest = hashlib.sha256(PNG).hexdigest()
    assert stored["sha256"] == digest and stored["size"] == len(PNG)
    secret = ok(client.put(f"{base}/variables/CRM_TOKEN", json={"value": TOKEN}))
    assert secret["secret"] and secret["value"] is None

    reply = prompt(client, "filer", instance, "is this receipt valid?", attachments=["/attachments/receipt.png"])
    assert reply.status_code in (200, 202), reply.text
    done = settled(client, f"{base}/submissions/{reply.json()['submission']['id']}")
    assert done["outcome"] == "completed", done
    assert done["result"]["text"] == f"sha256={digest} token=[secret]"

    history = ok(client.get(f"{base}/sessions/default/messages"))
    first = history["messages"][0]["parts"]
    assert first[1] == {
        "type": "file",
        "path": "/attachments/receipt.png",
        "media_type": "image/png",
        "size": len(PNG),
        "sha256": digest,
    }
    download = client.get(f"{base}/files/attachments/receipt.png")
    assert download.status_code == 200 and download.content == PNG

    everything = [
        client.get(f"{base}/sessions/default/messages").text,
        client.get(f"{base}/events", params={"after": 0, "limit": 1000}).text,
        client.get(f"{base}/variables").text,
        client.get(f"{base}/submissions/{done['id']}").text,
    ]
    encoded = base64.b64encode(PNG).decode()
    for text in everything:
        assert TOKEN not in text
        assert encoded[:64] not in text
    events = ok(client.get(f"{base}/events", params={"after": 0, "limit": 1000}))["events"]
    assert [e["data"] for e in events if e["type"] == "custom"] == [{"authorized_with": "[secret]"}]
    out, err = capfd.readouterr()  # the stack's handlers log to this process's stdout and stderr
    assert TOKEN not in out + err


def test_a_presigned_upload_of_20_mb_appears_in_the_listing(client: httpx.Client, instance: str) -> None:
    base = f"/agents/filer/{instance}"
    size = 20 * 1024 * 1024
    data = bytes(range(256)) * (size // 256)
    ticket = ok(client.post(f"{base}/uploads", json={"path": "/big/archive.zip", "media_type": "application/zip", "size": size}), 201)
    sent = httpx.request(ticket["method"], ticket["url"], content=data, headers=ticket["headers"], timeout=60)
    assert sent.status_code == 200, sent.text
    done = ok(client.post(ticket["complete"]))
    assert done["size"] == size and done["sha256"] == hashlib.sha256(data).hexdigest()
    listed = ok(client.get(f"{base}/files"))["files"]
    assert [(f["path"], f["size"]) for f in listed] == [("/big/archive.zip", size)]
    redirect = client.get(f"{base}/files/big/archive.zip")
    assert redirect.status_code == 307
    fetched = httpx.get(redirect.headers["location"], timeout=60)
    assert fetched.status_code == 200 and hashlib.sha256(fetched.content).hexdigest() == done["sha256"]
