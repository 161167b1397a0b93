"""Dependency layers: every function gets the common layer, only the worker the model SDK's.

The session's template is synthesized without bundling (no layers at all), so this
module synthesizes once more with bundling on, the layer builds replaced by empty
directories: what is checked is which function gets which layer, not their contents
(`test_bundling` covers those).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from infra import bundling
from infra.app import build_app
from infra.stack import HANDLERS, WEBSOCKET_HANDLER
from tests.infra.helpers import Resources, function_named, of_type

MODEL_CALLERS = {"functions.worker.handler"}


def _layer_dir(root: Path, name: str) -> Path:
    site = root / name / "python"
    site.mkdir(parents=True)
    (site / f"{name}.py").write_text("")  # distinct content: distinct assets
    return root / name


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Resources:
    root = tmp_path_factory.mktemp("layers")
    common, model = _layer_dir(root, "common"), _layer_dir(root, "model")
    with pytest.MonkeyPatch.context() as patch:
        source = bundling.build_source(bytecode_for=None)
        patch.setattr(bundling, "build_source", lambda **_: source)
        patch.setattr(bundling, "build_dependencies", lambda: common)
        patch.setattr(bundling, "build_model_dependencies", lambda: model)
        _, stack = build_app({"bundle": True, "websocket": True}, outdir=str(root / "cdk.out"))
        template = Template.from_stack(stack).to_json()
    return dict(template["Resources"])


def _layers(resources: Resources, handler: str) -> list[str]:
    _, function = function_named(resources, handler)
    return [ref["Ref"] for ref in function["Properties"].get("Layers", [])]


def test_two_layers_common_and_model_sdk(bundled: Resources) -> None:
    layers = of_type(bundled, "AWS::Lambda::LayerVersion")
    assert len(layers) == 2
    for layer in layers.values():
        props = layer["Properties"]
        assert props["CompatibleRuntimes"] == ["python3.13"]
        assert props["CompatibleArchitectures"] == ["arm64"]


def test_only_functions_that_call_models_get_the_model_sdk_layer(bundled: Resources) -> None:
    specs = (*HANDLERS, WEBSOCKET_HANDLER)
    handlers = [spec.handler for spec in specs]
    assert {spec.handler for spec in specs if spec.calls_models} == MODEL_CALLERS
    (common,) = {_layers(bundled, handler)[0] for handler in handlers}  # one shared layer
    for handler in handlers:
        layers = _layers(bundled, handler)
        if handler in MODEL_CALLERS:
            assert len(layers) == 2 and layers[0] == common
            assert "model SDK" in bundled[layers[1]]["Properties"]["Description"]
        else:
            assert layers == [common], handler


def test_without_bundling_no_layer_is_made(resources: Resources) -> None:
    assert not of_type(resources, "AWS::Lambda::LayerVersion")
