"""cfn-lint finds no error and cdk-nag (AwsSolutions) no unacknowledged finding; every
acknowledgment says why."""

from __future__ import annotations

from infra.checks import Synthesis, cfn_lint


def test_cfn_lint_is_clean(synthesis: Synthesis) -> None:
    code, output = cfn_lint(synthesis.template_path)
    assert code == 0, output


def test_cdk_nag_has_no_unacknowledged_finding(synthesis: Synthesis) -> None:
    assert [str(finding) for finding in synthesis.findings] == []


def test_acknowledgments_are_few_and_explained(synthesis: Synthesis) -> None:
    rules = {rule.split("[")[0] for _, rule, _ in synthesis.acknowledged}
    assert rules <= {
        "AwsSolutions::AwsSolutions-APIG4",  # auth is the agents' route/websocket hooks
        "AwsSolutions::AwsSolutions-IAM5",  # per-finding: task tokens, object keys, ...
        "AwsSolutions::AwsSolutions-L1",  # Python 3.13 on purpose
        "AwsSolutions::AwsSolutions-SF1",  # ERROR-level state machine logs
        "AwsSolutions::AwsSolutions-SMG4",  # a third-party API key cannot be rotated here
        "AwsSolutions::AwsSolutions-SQS3",  # the dispatch failures queue is a DLQ
    }
    for path, rule, reason in synthesis.acknowledged:
        assert len(reason) >= 40, (path, rule)
    star = [
        (path, reason)
        for path, rule, reason in synthesis.acknowledged
        if rule.endswith("[Resource::*]")
    ]
    # Resource "*" only for the worker's task-token calls and the state machine's logs/X-Ray.
    assert sorted(path.split("/", 1)[1] for path, _ in star) == [
        "BlockingChildren/Role",
        "Functions/worker-role",
    ]
