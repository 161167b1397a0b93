"""CDK entry point: ``python app.py``, or ``cdk synth`` / ``cdk deploy`` through cdk.json.

Configuration: CDK context, documented in `infra.config`.
"""

import os

# jsii prints a banner on every start under an end-of-life Node.js; set before aws_cdk loads.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "16,18,20")

from infra.app import build_app

if __name__ == "__main__":
    build_app()[0].synth()
