"""moto's server as the local stack runs it: connections kept open between requests, bodies
framed by Content-Length both ways; and a table's Query kept to its partition."""

from __future__ import annotations

import http.client
import json

from agent_runtime import settings
from agent_runtime.dev.aws import LocalAws


def test_a_client_reuses_one_connection_for_many_requests(local_aws: LocalAws) -> None:
    server = local_aws._server._server
    dynamodb = local_aws.client("dynamodb")
    dynamodb.describe_table(TableName=settings.LOCAL_TABLE)  # the client's first connection
    connections = set(server.connections)  # this client's, and the provisioning clients'
    for n in range(20):
        dynamodb.put_item(TableName=settings.LOCAL_TABLE, Item={"pk": {"S": "p"}, "sk": {"S": f"s{n}"}})
    assert server.connections == connections  # no connection was opened for a put


def test_bodies_are_framed_and_a_closing_client_is_answered_once(local_aws: LocalAws) -> None:
    s3 = local_aws.client("s3")
    s3.create_bucket(Bucket="framing")
    body = b"x" * 300_000
    s3.put_object(Bucket="framing", Key="big", Body=body)
    assert s3.get_object(Bucket="framing", Key="big")["Body"].read() == body
    assert s3.head_object(Bucket="framing", Key="big")["ContentLength"] == len(body)
    # A raw HTTP/1.1 client: two requests on one connection, then one that asks to close.
    connection = http.client.HTTPConnection("127.0.0.1", local_aws.port, timeout=10)
    for _ in range(2):
        connection.request("GET", "/moto-api/data.json")
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())
        assert response.getheader("Connection") != "close"
    connection.request("GET", "/moto-api/data.json", headers={"Connection": "close"})
    response = connection.getresponse()
    response.read()
    assert response.getheader("Connection") == "close"
    connection.close()


def test_a_chunked_upload_is_read_whole(local_aws: LocalAws) -> None:
    s3 = local_aws.client("s3")
    s3.create_bucket(Bucket="chunks")
    connection = http.client.HTTPConnection("127.0.0.1", local_aws.port, timeout=10)
    chunks = iter([b"a" * 1000, b"b" * 2000])
    connection.request("PUT", "/chunks/k", body=chunks, encode_chunked=True)
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    connection.request("GET", "/moto-api/data.json")  # the next request is framed right
    assert json.loads(connection.getresponse().read())
    connection.close()
    assert s3.get_object(Bucket="chunks", Key="k")["Body"].read() == b"a" * 1000 + b"b" * 2000


def test_a_query_reads_only_its_partition_in_order(local_aws: LocalAws) -> None:
    dynamodb = local_aws.client("dynamodb")
    table = settings.LOCAL_TABLE
    for pk in ("a", "b", "c"):
        for n in range(12):
            dynamodb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": f"S#{n:03d}"}})

    def query(**extra: object) -> list[str]:
        items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
            ExpressionAttributeValues={":pk": {"S": "b"}, ":s": {"S": "S#"}},
            **extra,
        )["Items"]
        assert {i["pk"]["S"] for i in items} <= {"b"}
        return [i["sk"]["S"] for i in items]

    assert query() == [f"S#{n:03d}" for n in range(12)]
    assert query(ScanIndexForward=False, Limit=2) == ["S#011", "S#010"]
    first = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "b"}},
        Limit=5,
    )
    rest = query(ExclusiveStartKey=first["LastEvaluatedKey"])
    assert rest == [f"S#{n:03d}" for n in range(5, 12)]
    assert dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "nothing"}},
    )["Items"] == []


def test_an_index_query_still_reads_the_index(local_aws: LocalAws) -> None:
    dynamodb = local_aws.client("dynamodb")
    shard, since = settings.PENDING_SHARD_ATTRIBUTE, settings.PENDING_SINCE_ATTRIBUTE
    for n in range(3):
        dynamodb.put_item(
            TableName=settings.LOCAL_TABLE,
            Item={"pk": {"S": f"i{n}"}, "sk": {"S": "HEAD"}, shard: {"N": "7"}, since: {"N": str(n)}},
        )
    # A base-table partition keyed like the index's value must not stand in for the index.
    dynamodb.put_item(TableName=settings.LOCAL_TABLE, Item={"pk": {"S": "7"}, "sk": {"S": "x"}})
    items = dynamodb.query(
        TableName=settings.LOCAL_TABLE,
        IndexName=settings.PENDING_INDEX,
        KeyConditionExpression="#shard = :shard AND #since <= :until",
        ExpressionAttributeNames={"#shard": shard, "#since": since},
        ExpressionAttributeValues={":shard": {"N": "7"}, ":until": {"N": "1"}},
    )["Items"]
    assert sorted(i["pk"]["S"] for i in items) == ["i0", "i1"]
