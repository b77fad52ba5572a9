"""Bad input given to the CLI ends in one ``error:`` line naming the file, exit status 2, no traceback.

Most probes run ``kogpt2.cli.main`` in-process (an uncaught exception fails the test, as a
traceback would); a few run ``python -m kogpt2`` as a subprocess to check stderr itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KOREAN_TXT, ROOT, korean_lines
from kogpt2.cli import main

BAD_WEIGHTS = ("truncated", "empty", "garbage", "bad_json", "shape", "weights_dir")


def corrupt(src: Path, dst: Path, kind: str) -> Path:
    """A copy of the model directory ``src`` with one defect of ``kind``."""
    shutil.copytree(src, dst)
    weights = dst / "model.safetensors"
    data = weights.read_bytes()
    if kind == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        weights.write_bytes(b"")
    elif kind == "garbage":
        weights.write_bytes(os.urandom(4096))
    elif kind == "bad_json":
        (dst / "config.json").write_text('{"model_type": "gpt2",', encoding="utf-8")
    elif kind == "shape":
        text = (dst / "config.json").read_text(encoding="utf-8")
        (dst / "config.json").write_text(text.replace('"n_embd": 32', '"n_embd": 64'), encoding="utf-8")
    elif kind == "weights_dir":
        weights.unlink()
        weights.mkdir()
    return dst


@pytest.fixture(scope="module")
def bad_models(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_models")
    return {k: corrupt(tiny_model_dir, root / k, k) for k in BAD_WEIGHTS}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Text files in UTF-8, CP949 and binary; a directory; a plain file."""
    root = tmp_path_factory.mktemp("files")
    text = "오늘 아침에\n옛날 옛적에\n"
    out = {"utf8": root / "p.txt", "cp949": root / "cp949.txt", "binary": root / "bin.txt",
           "dir": root / "adir", "file": root / "afile"}
    out["utf8"].write_text(text, encoding="utf-8")
    out["cp949"].write_bytes(text.encode("cp949"))
    out["binary"].write_bytes(b"\x00\x01\xff" * 300)
    out["dir"].mkdir()
    out["file"].write_text("x", encoding="utf-8")
    out["nsmc_cp949"] = root / "nsmc.txt"
    out["nsmc_cp949"].write_bytes("id\tdocument\tlabel\n1\t정말 좋다\t1\n".encode("cp949"))
    out["chat_cp949"] = root / "chat.csv"
    out["chat_cp949"].write_bytes("Q,A,label\n안녕,반가워,0\n".encode("cp949"))
    return out


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def assert_one_error(rc: int, err: str, *needles: str) -> None:
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


# ----------------------------------------------------------------------------- model directories

MODEL_COMMANDS = {
    "generate": ["generate", "오늘", "--backend", "torch", "--max-new-tokens", "2", "--model"],
    "eval bpc": ["eval", "bpc", "--text", KOREAN_TXT, "--model"],
    "classify": ["classify", "좋다", "--zero-shot", "--model"],
    "chat": ["chat", "--no-adapter", "--model"],
    "pplm": ["pplm", "오늘", "--bow", "공포", "--model"],
    "export hf": ["export", "hf"],
}


@pytest.mark.parametrize("kind", BAD_WEIGHTS)
@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_bad_model_dir_is_one_error_line(command, kind, bad_models, tmp_path, capsys):
    argv = MODEL_COMMANDS[command] + [bad_models[kind]]
    if command == "export hf":
        argv.append(tmp_path / "out")
    rc, err = run_main(argv, capsys)
    name = "config.json" if kind == "bad_json" else "model.safetensors"
    assert_one_error(rc, err, str(bad_models[kind]), name)


def test_model_dir_given_as_a_file_or_missing(files, capsys):
    rc, err = run_main(["classify", "좋다", "--zero-shot", "--model", files["file"]], capsys)
    assert_one_error(rc, err, str(files["file"]), "is a file, not a directory")
    rc, err = run_main(["classify", "좋다", "--zero-shot", "--model", files["dir"] / "nope"], capsys)
    assert_one_error(rc, err, "not found")


def test_finetune_with_a_corrupt_base(bad_models, tmp_path, capsys):
    data = tmp_path / "chat.csv"
    data.write_text("Q,A,label\n" + "\n".join(f"{q},{q},0" for q in korean_lines()[:20]) + "\n", encoding="utf-8")
    rc, err = run_main(["finetune", "chat", "--data", data, "--out", tmp_path / "ft", "--model",
                        bad_models["truncated"]], capsys)
    assert_one_error(rc, err, "model.safetensors", "truncated")


# ----------------------------------------------------------------------------- text files

TEXT_COMMANDS = {
    "generate --prompts": (["generate", "--model", "{model}", "--prompts"], "--prompts"),
    "classify --file": (["classify", "--zero-shot", "--model", "{model}", "--file"], "--file"),
    "pplm --bow-file": (["pplm", "오늘", "--model", "{model}", "--bow-file"], "word list"),
    "tokenizer encode --file": (["tokenizer", "encode", "--tokenizer", "{model}", "--file"], "--file"),
}


@pytest.mark.parametrize("kind", ["cp949", "binary", "dir"])
@pytest.mark.parametrize("command", sorted(TEXT_COMMANDS))
def test_undecodable_or_directory_text_file(command, kind, files, tiny_model_dir, capsys):
    argv, what = TEXT_COMMANDS[command]
    argv = [tiny_model_dir if a == "{model}" else a for a in argv] + [files[kind]]
    rc, err = run_main(argv, capsys)
    if kind == "dir":
        what = what if command != "pplm --bow-file" else "--bow-file"
    expect = {"cp949": "iconv -f cp949 -t utf-8", "binary": "binary", "dir": "is a directory"}[kind]
    assert_one_error(rc, err, str(files[kind]), what, expect)


@pytest.mark.parametrize("task,data", [("chat", "chat_cp949"), ("sentiment", "nsmc_cp949"), ("chat", "dir")])
def test_finetune_data_not_utf8_or_a_directory(task, data, files, tiny_model_dir, tmp_path, capsys):
    rc, err = run_main(["finetune", task, "--data", files[data], "--out", tmp_path / "o", "--model",
                        tiny_model_dir], capsys)
    assert_one_error(rc, err, str(files[data]), "is a directory" if data == "dir" else "iconv")


def test_blank_prompt_lines_are_reported(files, tmp_path, capsys):
    from kogpt2.textio import read_text_lines

    p = tmp_path / "p.txt"
    p.write_text("하나\n\n  \n둘\n", encoding="utf-8")
    assert read_text_lines(p, "--prompts") == ["하나", "둘"]
    assert "2 blank line(s) skipped" in capsys.readouterr().err


# ----------------------------------------------------------------------------- outputs and numbers

@pytest.mark.parametrize("argv", [
    ["finetune", "chat", "--data", "{utf8}", "--out", "{file}"],
    ["train", "--data", "{dir}", "--out", "{file}", "--preset", "mini"],
    ["export", "hf", "{model}", "{file}"],
    ["export", "onnx", "{model}", "{file}"],
    ["convert", "hf", "{model}", "{file}"],
    ["data", "prepare", "{utf8}", "--tokenizer", "{model}", "--out", "{file}"],
    ["tokenizer", "train", "{utf8}", "--out", "{file}"],
], ids=lambda a: " ".join(a[:2]))
def test_out_that_is_a_file_is_refused(argv, files, tiny_model_dir, capsys):
    fill = {"{model}": tiny_model_dir, **{f"{{{k}}}": v for k, v in files.items()}}
    rc, err = run_main([fill.get(a, a) for a in argv], capsys)
    assert_one_error(rc, err, str(files["file"]), "file")


@pytest.mark.parametrize("flags,needle", [
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--warmup-steps", "-1"], "--warmup-steps must be >= 0"),
    (["--save-interval", "0"], "--save-interval must be >= 1"),
    (["--dropout", "1.5"], "--dropout must be >= 0 and < 1"),
    (["--eval-interval", "-5"], "--eval-interval must be >= 0"),
])
def test_train_numbers_are_checked(flags, needle, files, tmp_path, capsys):
    rc, err = run_main(["train", "--data", files["dir"], "--out", tmp_path / "r", "--preset", "mini", *flags], capsys)
    assert_one_error(rc, err, needle)


@pytest.mark.parametrize("argv,needle", [
    (["finetune", "chat", "--data", "{utf8}", "--out", "{out}", "--lr", "nan"], "--lr must be a finite number"),
    (["finetune", "chat", "--data", "{utf8}", "--out", "{out}", "--max-val", "0"], "--max-val must be >= 1"),
    (["finetune", "chat", "--data", "{utf8}", "--out", "{out}", "--patience", "-1"], "--patience must be >= 0"),
    (["finetune", "chat", "--data", "{utf8}", "--out", "{out}", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["eval", "bpc", "--text", "{utf8}", "--max-docs", "-1"], "--max-docs must be >= 1"),
    (["eval", "bpc", "--text", "{utf8}", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["data", "inspect", "{dir}", "--n", "-1"], "--n must be >= 0"),
    (["data", "prepare", "{utf8}", "--tokenizer", "{dir}", "--out", "{out}", "--val-fraction", "nan"], "val_fraction"),
    (["tokenizer", "train", "{utf8}", "--out", "{out}", "--min-frequency", "0"], "--min-frequency must be >= 1"),
], ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else "")
def test_other_numbers_are_checked(argv, needle, files, tmp_path, capsys):
    fill = {"{out}": tmp_path / "o", **{f"{{{k}}}": v for k, v in files.items()}}
    rc, err = run_main([fill.get(a, a) for a in argv], capsys)
    assert_one_error(rc, err, needle)


# ----------------------------------------------------------------------------- training data and resume

@pytest.fixture(scope="module")
def seven_docs(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """A 7-document corpus prepared with the default split: its validation split is empty."""
    from kogpt2.data import prepare

    root = tmp_path_factory.mktemp("seven")
    lines = korean_lines()
    docs = ["\n".join(lines[i * 3:(i + 1) * 3]) for i in range(7)]
    (root / "seven.txt").write_text("\n<|endoftext|>\n".join(docs) + "\n", encoding="utf-8")
    prepare([root / "seven.txt"], tiny_tokenizer_dir, root / "data", progress=False)
    return root / "data"


TRAIN = ["--preset", "mini", "--n-layer", "2", "--n-embd", "32", "--n-head", "2", "--n-ctx", "16",
         "--batch-size", "2", "--max-steps", "4", "--save-interval", "2", "--sample-interval", "0",
         "--dtype", "fp32", "--threads", "1", "--peak-flops", "1e12"]


def test_prepare_warns_about_an_empty_validation_split(seven_docs, tiny_tokenizer_dir, tmp_path, capsys):
    from kogpt2.data import read_meta

    assert read_meta(seven_docs)["splits"]["val"]["tokens"] == 0
    rc = main(["data", "prepare", str(seven_docs.parent / "seven.txt"), "--tokenizer", str(tiny_tokenizer_dir),
               "--out", str(tmp_path / "d"), "--no-progress"])
    assert rc == 0
    assert "validation split is empty" in capsys.readouterr().err


def test_train_refuses_an_empty_validation_split_unless_evaluation_is_off(seven_docs, tmp_path, capsys):
    rc, err = run_main(["train", "--data", seven_docs, "--out", tmp_path / "r", *TRAIN], capsys)
    assert_one_error(rc, err, str(seven_docs), "validation split", "--eval-interval 0")
    assert main(["train", "--data", str(seven_docs), "--out", str(tmp_path / "r"), *TRAIN, "--eval-interval", "0"]) == 0
    assert (tmp_path / "r" / "step_0000004").is_dir()


def test_resume_with_a_truncated_newest_checkpoint_offers_the_previous_one(seven_docs, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--data", str(seven_docs), "--out", str(out), *TRAIN, "--eval-interval", "0"]
    assert main(args) == 0
    newest = out / "step_0000004" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])
    capsys.readouterr()
    rc, err = run_main([*args, "--max-steps", "6", "--resume"], capsys)
    assert_one_error(rc, err, str(newest), "--resume-from step_0000002")
    assert main([*args, "--max-steps", "6", "--resume-from", "step_0000002"]) == 0
    assert (out / "step_0000006").is_dir()
    from kogpt2.model_dir import check_model_dir

    check_model_dir(out / "step_0000004")  # rewritten whole by the resumed run


# ----------------------------------------------------------------------------- real subprocesses

def kogpt2_cli(*argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "kogpt2", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("case", ["truncated weights", "cp949 prompts"])
def test_subprocess_prints_one_error_line_and_exits_2(case, bad_models, files, tiny_model_dir):
    if case == "truncated weights":
        p = kogpt2_cli("generate", "오늘", "--backend", "torch", "--model", bad_models["truncated"])
        needle = str(bad_models["truncated"] / "model.safetensors")
    else:
        p = kogpt2_cli("generate", "--model", tiny_model_dir, "--prompts", files["cp949"])
        needle = "iconv -f cp949 -t utf-8"
    assert_one_error(p.returncode, p.stderr, needle)


@pytest.mark.parametrize("flag,value", [("--backend", "tpu"), ("--dtype", "int4")])
def test_serve_backend_and_dtype_are_checked(flag, value, capsys):
    import socket

    with socket.socket() as s:  # a port free a moment ago: the server binds it, then refuses the flag
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = run_main(["serve", "--port", str(port), flag, value], capsys)
    assert_one_error(rc, err, f"unknown {flag[2:]} '{value}'")


# ----------------------------------------------------------------------------- devices, conflicts, usage

@pytest.mark.parametrize("device,needle", [("tpu", "unknown device 'tpu'"), ("cuda", "no CUDA GPU"),
                                           ("cuda:9", "no CUDA GPU")])
def test_train_device_is_checked_in_one_line(device, needle, seven_docs, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, err = run_main(["train", "--data", seven_docs, "--out", tmp_path / "r", *TRAIN, "--eval-interval", "0",
                        "--device", device], capsys)
    assert_one_error(rc, err, needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv,needle", [
    (["train", "--data", "{dir}", "--out", "{out}", "--preset", "mini", "--lr", "1e-4", "--min-lr", "1e-3"],
     "--min-lr 0.001 is above --lr 0.0001"),
    (["train", "--data", "{dir}", "--out", "{out}", "--resume", "--init-from", "{dir}"],
     "give only one of them"),
    (["train", "--data", "{seven}", "--out", "{out}", *TRAIN, "--dtype", "fp16", "--device", "cpu"],
     "--dtype fp16 needs a CUDA GPU"),
    (["finetune", "chat", "--data", "{utf8}", "--out", "{out}", "--full", "--lora-r", "16"],
     "--lora-r only apply to LoRA"),
    (["finetune", "sentiment", "--data", "{utf8}", "--out", "{out}", "--lr", "1e-4", "--min-lr", "1e-3"],
     "--min-lr 0.001 is above the peak learning rate"),
    (["generate", "오늘", "--greedy", "--do-sample"], "give only one of them"),
    (["finetune", "chat", "--data", "{utf8}", "--out", "{out}", "--resume"], "holds no unfinished fine-tuning run"),
    (["adventure", "--load", "{utf8}", "--genre", "horror", "--temperature", "0.5"],
     "drop --genre, --temperature"),
    (["export", "hf", "{model}", "{model}"], "is the source model"),
    (["export", "onnx", "{model}", "{parent}"], "holds the source model"),
], ids=lambda a: " ".join(a[:4]) if isinstance(a, list) else "")
def test_conflicting_flags_are_one_error(argv, needle, files, seven_docs, tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "m" / "model"
    shutil.copytree(tiny_model_dir, model)
    fill = {"{out}": tmp_path / "o", "{seven}": seven_docs, "{model}": model, "{parent}": model.parent,
            **{f"{{{k}}}": v for k, v in files.items()}}
    before = sorted(p.name for p in model.iterdir())
    rc, err = run_main([fill.get(a, a) for a in argv], capsys)
    assert_one_error(rc, err, needle)
    assert sorted(p.name for p in model.iterdir()) == before and not (tmp_path / "o").exists()


def test_a_finetune_lora_flag_at_its_task_default_is_fine_with_full():
    import argparse

    from kogpt2.commands.finetune import lora_flags_with_full

    lora_flags_with_full(argparse.Namespace(task="sentiment", full=True, lora_r=8, lora_embeddings=True))
    with pytest.raises(Exception, match="--lora-embeddings"):
        lora_flags_with_full(argparse.Namespace(task="sentiment", full=True, lora_r=8, lora_embeddings=False))


@pytest.mark.parametrize("argv,needle", [
    (["generate", "--bogus"], "kogpt2 generate: unrecognized arguments: --bogus"),
    (["generate", "오늘", "--device", "tpu"], "argument --device: unknown device 'tpu'"),
    (["tokenizer", "encode", "오늘"], "kogpt2 tokenizer encode: the following arguments are required: --tokenizer"),
    (["finetune", "chat", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    (["data"], "kogpt2 data: the following arguments are required: {prepare,inspect}"),
    (["tokenizer"], "kogpt2 tokenizer: the following arguments are required: {train,encode,info}"),
])
def test_usage_errors_are_one_line_naming_the_help(argv, needle):
    p = kogpt2_cli(*argv)
    assert_one_error(p.returncode, p.stderr, needle, "--help`")
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.parametrize("argv", [["tokenizer", "encode", "--tokenizer", "{tok}"], ["chat", "--batch", "--model",
                                  "{model}", "--no-adapter", "--max-new-tokens", "2"]], ids=lambda a: a[0])
def test_stdin_that_is_not_utf8_is_one_error(argv, tiny_model_dir, tiny_tokenizer_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LC_ALL": "C.UTF-8"}
    fill = {"{tok}": tiny_tokenizer_dir, "{model}": tiny_model_dir}
    p = subprocess.run([sys.executable, "-m", "kogpt2", *[str(fill.get(a, a)) for a in argv]],
                       input="안녕하세요\n".encode("cp949"), capture_output=True, env=env, timeout=300)
    assert_one_error(p.returncode, p.stderr.decode(), "not UTF-8", "iconv -f cp949")


def test_eval_bpc_text_without_documents_fails_before_the_model_loads(bad_models, tmp_path, capsys):
    empty = tmp_path / "blank.txt"
    empty.write_text("\n  \n<|endoftext|>\n", encoding="utf-8")
    rc, err = run_main(["eval", "bpc", "--text", empty, "--model", bad_models["truncated"]], capsys)
    assert_one_error(rc, err, f"no documents found in {empty}", "blank lines: 2", "one paragraph per line")


@pytest.mark.parametrize("flags,needle", [
    (["--host", "999.1.1.1"], "--host must be an address of this machine"),
    (["--cors-origin", "example.org/"], "'example.org/' not an origin"),
    (["--max-tokens-cap", "-1"], "max_tokens_cap must be >= 1, got -1"),
    (["--model", "{missing}"], "model directory not found"),
])
def test_serve_settings_are_one_clear_error(flags, needle, tmp_path, capsys, caplog, monkeypatch):
    import socket

    import uvicorn

    def started(*a, **k):  # a setting the check missed would serve forever: fail at once instead
        raise AssertionError(f"the server started with {flags}")

    monkeypatch.setattr(uvicorn.Server, "run", started)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = [str(tmp_path / "missing") if f == "{missing}" else f for f in flags]
    rc, err = run_main(["serve", "--port", str(port), *flags], capsys)
    assert_one_error(rc, err, needle)
    assert "exceeds" not in err and "another --port" not in err
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # no unrelated chat-adapter note first


def test_data_inspect_says_when_the_split_is_empty(seven_docs, capsys):
    assert main(["data", "inspect", str(seven_docs), "--split", "val"]) == 0
    assert "the val split is empty" in capsys.readouterr().out
    assert main(["data", "inspect", str(seven_docs), "--split", "train", "--n", "1", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "train sample 1" in out and "is empty" not in out


def test_an_argument_that_is_not_utf8_is_one_error(tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LC_ALL": "C.UTF-8"}
    p = subprocess.run([sys.executable, "-m", "kogpt2", "generate", "안녕".encode("cp949"), "--model",
                        str(tiny_model_dir)], capture_output=True, env=env, timeout=300)
    assert_one_error(p.returncode, p.stderr.decode(), "is not UTF-8 text", "iconv -f cp949")


def test_tokenizer_train_says_when_the_vocabulary_is_not_the_asked_size(files, tmp_path, capsys):
    assert main(["tokenizer", "train", str(files["utf8"]), "--out", str(tmp_path / "t"), "--vocab-size", "400",
                 "--min-frequency", "1"]) == 0
    err = capsys.readouterr().err
    assert "below --vocab-size 400" in err and "give more text" in err
