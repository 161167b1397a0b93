"""The deploy side: CDK constructs (`infra.constructs`), the stack (`infra.stack`), the
app (`infra.app`), Lambda packaging (`infra.bundling`) and checks (`infra.checks`)."""

import os

# jsii prints a banner on every start under an end-of-life Node.js; set before aws_cdk loads.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "16,18,20")
