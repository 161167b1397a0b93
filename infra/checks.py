"""Synthesize the stack and check it: cfn-lint and cdk-nag (AwsSolutions pack).

    python -m infra.checks [--outdir cdk.out] [--no-bundle] [-c key=value ...]

Exit code 0 when cfn-lint reports no error and cdk-nag no unacknowledged finding.

cfn-lint ignores W3005 ("DependsOn is redundant"): CDK adds explicit dependencies
that CloudFormation would infer, e.g. a role's policy before the function using it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.app import build_app
from infra.nag import acknowledgments

CFN_LINT_IGNORED = ("W3005",)
DEFAULT_OUTDIR = Path(__file__).resolve().parents[1] / "cdk.out"


@dataclass(frozen=True)
class Finding:
    """One cdk-nag violation: rule id (with its finding), construct path, description."""

    rule: str
    path: str
    description: str
    severity: str

    def __str__(self) -> str:
        return f"{self.severity.upper()} {self.rule} at {self.path}: {self.description}"


@dataclass
class Synthesis:
    """The result of `synthesize`: where the template is and what cdk-nag found."""

    outdir: Path
    stack_name: str
    template_path: Path
    findings: list[Finding] = field(default_factory=list)
    acknowledged: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def template(self) -> dict[str, Any]:
        return dict(json.loads(self.template_path.read_text()))


def _read_findings(report: Path) -> list[Finding]:
    if not report.is_file():
        return []
    findings: list[Finding] = []
    for plugin in json.loads(report.read_text()).get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                findings.append(
                    Finding(
                        rule=violation["ruleName"],
                        path=construct.get("constructPath", "?"),
                        description=violation.get("description", ""),
                        severity=violation.get("severity", "error"),
                    )
                )
    return findings


def synthesize(
    context: dict[str, Any] | None = None, *, outdir: Path = DEFAULT_OUTDIR, nag: bool = True
) -> Synthesis:
    """Synthesize into `outdir` with (by default) the AwsSolutions checks as a validation
    plugin. Findings do not raise: they are returned, with the acknowledgments."""
    outdir = Path(outdir)
    report = outdir / "validation-report.json"
    report.unlink(missing_ok=True)
    app, stack = build_app(context, outdir=str(outdir))
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except RuntimeError as error:
        # cdk-nag's violations stop synthesis after the report is written; anything
        # else is a real failure.
        if "ValidationFailed" not in str(error) or not report.is_file():
            raise
    return Synthesis(
        outdir=outdir,
        stack_name=stack.stack_name,
        template_path=outdir / stack.template_file,
        findings=_read_findings(report),
        acknowledged=acknowledgments(app),
    )


def _cfn_lint_executable() -> str:
    beside = Path(sys.executable).with_name("cfn-lint")
    found = str(beside) if beside.is_file() else shutil.which("cfn-lint")
    if not found:
        raise FileNotFoundError("cfn-lint is not installed (pip install cfn-lint)")
    return found


def cfn_lint(template: Path) -> tuple[int, str]:
    """Run cfn-lint on `template`; returns its exit code and output."""
    # The template path comes first: the ignore list would swallow it otherwise.
    command = [_cfn_lint_executable(), str(template), "--ignore-checks", *CFN_LINT_IGNORED]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def run_checks(
    context: dict[str, Any] | None = None, *, outdir: Path = DEFAULT_OUTDIR, verbose: bool = True
) -> int:
    """Synthesize, cfn-lint, cdk-nag; print what fails. Exit code: 0 when both are clean."""
    synthesis = synthesize(context, outdir=outdir)
    lint_code, lint_output = cfn_lint(synthesis.template_path)
    failed = False
    if lint_code != 0:
        failed = True
        print(f"cfn-lint: exit {lint_code}\n{lint_output}")
    elif verbose:
        print(f"cfn-lint: clean ({synthesis.template_path})")
    if synthesis.findings:
        failed = True
        print(f"cdk-nag: {len(synthesis.findings)} unacknowledged finding(s)")
        for finding in synthesis.findings:
            print(f"  {finding}")
    elif verbose:
        print(f"cdk-nag: clean, {len(synthesis.acknowledged)} acknowledgment(s)")
        for path, rule, reason in synthesis.acknowledged:
            print(f"  {rule} at {path}: {reason}")
    return 1 if failed else 0


def _context_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.checks", description=__doc__)
    parser.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
    parser.add_argument(
        "--no-bundle", action="store_true", help="skip installing dependencies (faster)"
    )
    parser.add_argument("-c", "--context", type=_context_pair, action="append", default=[])
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    context: dict[str, Any] = dict(args.context)
    if args.no_bundle:
        context["bundle"] = False
    return run_checks(context, outdir=args.outdir, verbose=not args.quiet)


if __name__ == "__main__":
    sys.exit(main())
