"""CloudWatch alarms on the signals that mean work is stuck or lost."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# A wake-up older than this means no worker is draining the queue.
OLDEST_WAKEUP_SECONDS = 15 * 60


class Alarms(Construct):
    """``dead_letters``, ``dispatch_failures``, ``worker_errors``, ``worker_throttles``,
    ``oldest_wakeup``; all of them in ``alarms``. None has an action yet: attach an SNS
    topic (``alarm.add_alarm_action``) where the operators are."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        dispatch_failures: sqs.IQueue,
        worker: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        minute, five = Duration.minutes(1), Duration.minutes(5)

        def above(
            name: str, metric: cloudwatch.IMetric, threshold: float, description: str
        ) -> cloudwatch.Alarm:
            return cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )

        self.dead_letters = above(
            "DeadLetters",
            dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=minute, statistic="Maximum"
            ),
            0,
            "A wake-up reached the dead-letter queue: an instance's submission failed "
            "every attempt.",
        )
        self.dispatch_failures = above(
            "DispatchFailures",
            dispatch_failures.metric_approximate_number_of_messages_visible(
                period=minute, statistic="Maximum"
            ),
            0,
            "An EventBridge dispatch event could not be admitted.",
        )
        self.worker_errors = above(
            "WorkerErrors",
            worker.metric_errors(period=five, statistic="Sum"),
            0,
            "The worker function failed (an invocation error, not a failed submission).",
        )
        self.worker_throttles = above(
            "WorkerThrottles",
            worker.metric_throttles(period=five, statistic="Sum"),
            0,
            "The worker function was throttled: wake-ups wait for concurrency.",
        )
        self.oldest_wakeup = above(
            "OldestWakeup",
            queue.metric_approximate_age_of_oldest_message(period=minute, statistic="Maximum"),
            OLDEST_WAKEUP_SECONDS,
            "The oldest wake-up has waited more than 15 minutes.",
        )
        self.alarms = [
            self.dead_letters,
            self.dispatch_failures,
            self.worker_errors,
            self.worker_throttles,
            self.oldest_wakeup,
        ]


class Dashboard(Construct):
    """``dashboard``: one CloudWatch dashboard for the operators. Submissions by outcome,
    their latency and tokens (the worker's metrics, `functions.worker.report`), the
    worker function, the wake-up queues, and the alarms' states."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        namespace: str,
        service: str,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        worker: lambda_.IFunction,
        alarms: list[cloudwatch.Alarm],
    ) -> None:
        super().__init__(scope, construct_id)
        five = Duration.minutes(5)

        def submissions(name: str, statistic: str = "Sum", label: str | None = None) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map={"service": service},
                statistic=statistic,
                period=five,
                label=label or name,
            )

        def graph(title: str, *metrics: cloudwatch.IMetric) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(metrics), width=8, height=6)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            graph(
                "Submissions settled",
                submissions("SubmissionsCompleted", label="completed"),
                submissions("SubmissionsFailed", label="failed"),
                submissions("SubmissionsAborted", label="aborted"),
            ),
            graph(
                "Submission latency (s)",
                submissions("SubmissionSeconds", "p50", "accepted to settled, p50"),
                submissions("SubmissionSeconds", "p90", "accepted to settled, p90"),
                submissions("QueueSeconds", "p90", "accepted to started, p90"),
            ),
            graph(
                "Model tokens",
                submissions("InputTokens", label="input"),
                submissions("OutputTokens", label="output"),
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Worker",
                worker.metric_invocations(period=five, statistic="Sum"),
                worker.metric_errors(period=five, statistic="Sum"),
                worker.metric_throttles(period=five, statistic="Sum"),
            ),
            graph("Worker duration (ms)", worker.metric_duration(period=five, statistic="p90")),
            graph(
                "Wake-ups",
                queue.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum"),
                queue.metric_approximate_age_of_oldest_message(period=five, statistic="Maximum"),
                dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=five, statistic="Maximum", label="dead letters"
                ),
            ),
        )
        self.dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=alarms, width=24))
