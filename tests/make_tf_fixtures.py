"""Write the tiny TensorFlow checkpoints in ``tests/fixtures/tf/`` (run once, commit the output).

Needs TensorFlow, which is NOT a dependency of KoGPT2: install it into a separate venv so the
project's numpy/protobuf stay untouched, then run from the repository root::

    python3 -m venv /root/tfvenv && /root/tfvenv/bin/pip install tensorflow-cpu   # 2.21.0 used
    /root/tfvenv/bin/python tests/make_tf_fixtures.py

It writes, with TensorFlow's own ``tf.compat.v1.train.Saver`` (TF1 name-based checkpoints,
the format of OpenAI's GPT-2 release and of the Grover / KoGPT2-train TPU trainer):

* ``openai/``: OpenAI GPT-2 layout, one data shard, ``hparams.json`` and a ``checkpoint`` file.
* ``grover/``: Grover (KoGPT2-train) layout with variables spread over two CPU devices, hence
  several data shards (``model.ckpt-7.data-0000{0,1,2}-of-00003``), a ``global_step`` and
  Adafactor slot variables as a TPU run leaves them, and Grover's ``config.json``.
* ``unknown/``: two BERT-style variables, to test the unknown-layout error.
* ``expected.json``: for every variable, the shape, dtype and SHA-256 of the values as
  ``tf.train.load_checkpoint`` reads them, so the tests check our TF-free reader against
  TensorFlow without TensorFlow installed. The script also checks the reader itself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures" / "tf"
sys.path.insert(0, str(HERE.parent / "src"))

OPENAI_HPARAMS = {"n_vocab": 512, "n_ctx": 32, "n_embd": 8, "n_head": 2, "n_layer": 2}
GROVER_CONFIG = {"vocab_size": 640, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 24, "max_position_embeddings": 32, "hidden_act": "gelu",
                 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}


def _normal(rng: np.random.Generator, shape, std: float = 0.3, mean: float = 0.0) -> np.ndarray:
    return (mean + std * rng.standard_normal(shape)).astype(np.float32)


def openai_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """OpenAI GPT-2 variable names; conv1d weights are [1, n_in, n_out]."""
    h = OPENAI_HPARAMS
    d, v, t = h["n_embd"], h["n_vocab"], h["n_ctx"]
    w = {"model/wte": _normal(rng, (v, d)), "model/wpe": _normal(rng, (t, d))}
    for i in range(h["n_layer"]):
        p = f"model/h{i}"
        w[f"{p}/ln_1/g"], w[f"{p}/ln_1/b"] = _normal(rng, d, 0.2, 1.0), _normal(rng, d, 0.1)
        w[f"{p}/attn/c_attn/w"], w[f"{p}/attn/c_attn/b"] = _normal(rng, (1, d, 3 * d)), _normal(rng, 3 * d, 0.1)
        w[f"{p}/attn/c_proj/w"], w[f"{p}/attn/c_proj/b"] = _normal(rng, (1, d, d)), _normal(rng, d, 0.1)
        w[f"{p}/ln_2/g"], w[f"{p}/ln_2/b"] = _normal(rng, d, 0.2, 1.0), _normal(rng, d, 0.1)
        w[f"{p}/mlp/c_fc/w"], w[f"{p}/mlp/c_fc/b"] = _normal(rng, (1, d, 4 * d)), _normal(rng, 4 * d, 0.1)
        w[f"{p}/mlp/c_proj/w"], w[f"{p}/mlp/c_proj/b"] = _normal(rng, (1, 4 * d, d)), _normal(rng, d, 0.1)
    w["model/ln_f/g"], w["model/ln_f/b"] = _normal(rng, d, 0.2, 1.0), _normal(rng, d, 0.1)
    return w


def grover_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Grover ``lm/modeling.py`` variable names; dense kernels are [n_in, n_out]."""
    c = GROVER_CONFIG
    d, v, t, ff = c["hidden_size"], c["vocab_size"], c["max_position_embeddings"], c["intermediate_size"]
    e = "newslm/embeddings"
    w = {f"{e}/word_embed": _normal(rng, (v, d)), f"{e}/pos_embed": _normal(rng, (t, d)),
         f"{e}/LayerNorm_embed_norm/gamma": _normal(rng, d, 0.2, 1.0),
         f"{e}/LayerNorm_embed_norm/beta": _normal(rng, d, 0.1)}
    for i in range(c["num_hidden_layers"]):
        p = f"newslm/layer{i:02d}"
        for name in ("query_layer", "key_layer", "value_layer", "context_projection_layer"):
            w[f"{p}/{name}/kernel"], w[f"{p}/{name}/bias"] = _normal(rng, (d, d)), _normal(rng, d, 0.1)
        w[f"{p}/LayerNorm_mlp_ln0/gamma"] = _normal(rng, d, 0.2, 1.0)
        w[f"{p}/LayerNorm_mlp_ln0/beta"] = _normal(rng, d, 0.1)
        w[f"{p}/intermediate/kernel"], w[f"{p}/intermediate/bias"] = _normal(rng, (d, ff)), _normal(rng, ff, 0.1)
        w[f"{p}/output/kernel"], w[f"{p}/output/bias"] = _normal(rng, (ff, d)), _normal(rng, d, 0.1)
        w[f"{p}/LayerNorm_mlp_ln1/gamma"] = _normal(rng, d, 0.2, 1.0)
        w[f"{p}/LayerNorm_mlp_ln1/beta"] = _normal(rng, d, 0.1)
    # What a TPU training run leaves beside the weights; the converter must ignore them.
    w["newslm/layer00/intermediate/kernel/adafactor_vr"] = np.abs(_normal(rng, d))
    w["newslm/layer00/intermediate/kernel/adafactor_vc"] = np.abs(_normal(rng, ff))
    return w


def save(weights: dict[str, np.ndarray], prefix: Path, n_devices: int, extra_int64: dict[str, int]) -> None:
    """Save with ``tf.compat.v1.train.Saver``; variables round-robin over ``n_devices`` CPUs."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        for i, (name, value) in enumerate(sorted(weights.items())):
            with tf.device(f"/cpu:{i % n_devices}"):
                tf.compat.v1.get_variable(name, initializer=tf.constant(value), use_resource=False)
        for name, value in extra_int64.items():
            tf.compat.v1.get_variable(name, initializer=tf.constant(value, dtype=tf.int64), use_resource=False)
        saver = tf.compat.v1.train.Saver(sharded=n_devices > 1)
        config = tf.compat.v1.ConfigProto(device_count={"CPU": n_devices})
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            step = extra_int64.get("global_step")
            saved = saver.save(sess, str(prefix), global_step=step, write_meta_graph=False)
    # TF records absolute paths in the ``checkpoint`` state file; keep the committed one portable.
    name = Path(saved).name
    (prefix.parent / "checkpoint").write_text(
        f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')


def describe(prefix: str) -> dict[str, dict]:
    """Shape, dtype and SHA-256 of each variable, as TensorFlow's own reader returns them."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    out = {}
    for name, shape in sorted(reader.get_variable_to_shape_map().items()):
        value = np.asarray(reader.get_tensor(name))
        out[name] = {"shape": list(shape), "dtype": str(value.dtype),
                     "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    return out


def check_our_reader(prefix: str, expected: dict[str, dict]) -> None:
    """Our TF-free reader must return exactly TensorFlow's bytes for every variable."""
    from kogpt2.tf_checkpoint import TFCheckpoint

    ckpt = TFCheckpoint(prefix)
    assert sorted(ckpt.names()) == sorted(expected), (sorted(ckpt.names()), sorted(expected))
    for name, e in expected.items():
        value = ckpt.read(name)
        got = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        assert list(value.shape) == e["shape"] and str(value.dtype) == e["dtype"] and got == e["sha256"], name


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    rng = np.random.default_rng(20240605)
    (OUT / "openai").mkdir(parents=True)
    save(openai_weights(rng), OUT / "openai" / "model.ckpt", n_devices=1, extra_int64={})
    (OUT / "openai" / "hparams.json").write_text(json.dumps(OPENAI_HPARAMS, indent=2) + "\n")
    (OUT / "grover").mkdir(parents=True)
    save(grover_weights(rng), OUT / "grover" / "model.ckpt", n_devices=2, extra_int64={"global_step": 7})
    (OUT / "grover" / "config.json").write_text(json.dumps(GROVER_CONFIG, indent=2) + "\n")
    (OUT / "unknown").mkdir(parents=True)  # neither layout: a BERT-style name set
    save({"bert/embeddings/word_embeddings": _normal(rng, (4, 2)), "bert/pooler/dense/bias": _normal(rng, 2)},
         OUT / "unknown" / "model.ckpt", n_devices=1, extra_int64={})
    expected = {"openai/model.ckpt": describe(str(OUT / "openai" / "model.ckpt")),
                "grover/model.ckpt-7": describe(str(OUT / "grover" / "model.ckpt-7")),
                "unknown/model.ckpt": describe(str(OUT / "unknown" / "model.ckpt"))}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    for rel, exp in expected.items():
        check_our_reader(str(OUT / rel), exp)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.1f} KiB); our reader matches TensorFlow on every variable")


if __name__ == "__main__":
    main()
