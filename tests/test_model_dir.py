"""check_model_dir: complete directories pass, every defect is one KoGPT2Error naming the file."""

from __future__ import annotations

import json
import shutil

import pytest

from kogpt2.errors import KoGPT2Error
from kogpt2.model_dir import check_adapter_dir, check_model_dir


def test_complete_directories_pass(tiny_model_dir):
    assert check_model_dir(tiny_model_dir, tokenizer=True) == tiny_model_dir


def test_bundled_model_passes():
    from kogpt2.paths import bundled_model_dir

    if not (bundled_model_dir() / "config.json").is_file():
        pytest.skip("bundled model not installed")
    check_model_dir(bundled_model_dir(), tokenizer=True)


def test_pytorch_bin_weights_are_read_and_truncation_caught(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    d = tmp_path / "bin"
    shutil.copytree(tiny_model_dir, d)
    torch.save(load_file(str(d / "model.safetensors")), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    check_model_dir(d)
    data = (d / "pytorch_model.bin").read_bytes()
    (d / "pytorch_model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(KoGPT2Error, match="pytorch_model.bin cannot be loaded"):
        check_model_dir(d)


def test_config_with_more_layers_than_the_weights(tiny_model_dir, tmp_path):
    d = tmp_path / "layers"
    shutil.copytree(tiny_model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "n_layer": cfg["n_layer"] + 1}))
    with pytest.raises(KoGPT2Error, match=r"lacks \d+ tensor\(s\).*h\.2\."):
        check_model_dir(d)


@pytest.mark.parametrize("edit,needle", [
    (lambda d: (d / "config.json").write_text('{"model_type": "nope"}'), "model_type 'nope'"),
    (lambda d: (d / "config.json").write_text("[1, 2]"), "not an object"),
    (lambda d: (d / "config.json").unlink(), "is missing config.json"),
    (lambda d: (d / "model.safetensors").unlink(), "has no weights"),
    (lambda d: (d / "tokenizer.json").unlink(), "has no tokenizer.json"),
])
def test_each_defect_is_named(edit, needle, tiny_model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    edit(d)
    with pytest.raises(KoGPT2Error, match=needle):
        check_model_dir(d, tokenizer=True)


def test_adapter_dir(tmp_path):
    from safetensors.torch import save_file
    import torch

    (tmp_path / "adapter_config.json").write_text("{}")
    save_file({"a": torch.zeros(2)}, str(tmp_path / "adapter_model.safetensors"))
    check_adapter_dir(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\x10")
    with pytest.raises(KoGPT2Error, match="adapter_model.safetensors"):
        check_adapter_dir(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{")
    with pytest.raises(KoGPT2Error, match="adapter_config.json is not valid JSON"):
        check_adapter_dir(tmp_path)
