"""What SNS published, read from moto's own record (``/_localaws/sns/published``)."""

from __future__ import annotations

import json

import localaws


def test_given_a_filtered_subscriber_when_json_structured_messages_are_published_then_the_record_keeps_every_variant(
    aws: localaws.Server,
) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="changegate-notifications")["TopicArn"]
    queue, arn = localaws.queue(sqs, "alice-email")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                  Attributes={"FilterPolicy": json.dumps({"user": ["alice"]})})
    message = json.dumps({"default": "plain", "email": "Dear alice", "https": json.dumps({"version": "1.0"})})

    for user in ("alice", "bob"):
        sns.publish(TopicArn=topic, Message=message, MessageStructure="json", Subject=f"for {user}",
                    MessageAttributes={"user": {"DataType": "String", "StringValue": user}})

    published = aws.sns_published()
    assert [p["Subject"] for p in published] == ["for alice", "for bob"]
    assert published[0]["Message"] == message and published[0]["TopicArn"] == topic
    assert published[0]["MessageAttributes"] == {"user": {"DataType": "String", "StringValue": "alice"}}
    [delivered] = localaws.drain(sqs, queue)  # the filter policy kept bob's out
    assert delivered["Subject"] == "for alice" and delivered["Message"] == "plain"


def test_given_published_messages_when_moto_is_reset_then_the_record_is_empty(aws: localaws.Server) -> None:
    sns = aws.client("sns")
    topic = sns.create_topic(Name="t")["TopicArn"]
    sns.publish(TopicArn=topic, Message="one")
    sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": "1", "Message": "two"}])
    assert [p["Message"] for p in aws.sns_published()] == ["one", "two"]

    aws.reset()

    assert aws.sns_published() == []
