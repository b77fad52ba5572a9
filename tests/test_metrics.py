"""``metrics.csv`` and ``loss.png``: one schema and one plot for pretraining and fine-tuning."""

from __future__ import annotations

import csv

import pytest

from kogpt2.metrics import MetricsLog, plot_metrics


def test_resumed_metrics_drop_rows_logged_after_the_checkpoint(tmp_path):
    from kogpt2.metrics import MetricsLog

    log = MetricsLog(tmp_path)
    for step in range(1, 8):
        log.log(step=step, tokens=step * 10, loss=7.0 - step / 10)
    log.log(step=5, tokens=50, val_loss=6.0, val_bpc=4.0)
    log.f.close()
    # the run was killed after step 7; its last checkpoint was step 5
    log = MetricsLog(tmp_path, resume_step=5)
    log.log(step=6, tokens=60, loss=1.0)
    log.f.close()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [(r["step"], r["loss"]) for r in rows if r["loss"]] == [
        ("1", "6.9"), ("2", "6.8"), ("3", "6.7"), ("4", "6.6"), ("5", "6.5"), ("6", "1.0")]
    assert [r["val_bpc"] for r in rows if r["val_bpc"]] == ["4.0"]


def test_unknown_metric_is_an_error_not_a_silent_drop(tmp_path):
    log = MetricsLog(tmp_path)
    with pytest.raises(ValueError, match="unknown metrics \\['val_f1'\\]"):
        log.log(step=1, val_f1=0.5)
    log.close()


@pytest.mark.parametrize("metric", ["val_bpc", "val_acc"])
def test_one_plot_draws_pretraining_and_fine_tuning_runs(tmp_path, metric):
    log = MetricsLog(tmp_path)
    for step in range(1, 6):
        log.log(step=step, tokens=step * 100, loss=3.0 - step / 10)
    log.log(step=5, tokens=500, val_loss=2.0, **{metric: 0.7})
    log.close()
    plot_metrics(tmp_path / "metrics.csv", tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 5_000 and not list(tmp_path.glob("*.tmp*"))
