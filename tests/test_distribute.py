"""tf.distribute: two workers on 127.0.0.1 stay in sync; two mirrored CPU
replicas follow the single-device loss trajectory."""

import json
import os
import re
import socket

import numpy as np
import pytest
import tensorflow as tf

# Deterministic steps (rounding proxy, one λ), so that trajectories compare.
TINY = ["--flagfile=configs/tiny-test.cfg", "--proxy=round", "--lmbdas=0.01",
        "--validate_every=0", "--seed=3"]


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _fingerprint(output):
  match = re.search(r"weights fingerprint (\w+)", output)
  assert match, output[-3000:]
  return match.group(1)


@pytest.mark.slow  # 70 s; the mirrored test below runs the same steps
def test_two_workers_end_with_identical_weights(start_training, tmp_path):
  train_dir = str(tmp_path / "run")
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  workers = [
      start_training(
          *TINY, f"--train_dir={train_dir}", "--steps=4",
          "--checkpoint_every=2", "--strategy=multi_worker_mirrored",
          env={"TF_CONFIG": json.dumps(
              {"cluster": cluster, "task": {"type": "worker", "index": i}})})
      for i in range(2)]
  outputs = [w.communicate(timeout=600)[0] for w in workers]
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-3000:]
  assert _fingerprint(outputs[0]) == _fingerprint(outputs[1])
  assert tf.train.latest_checkpoint(
      os.path.join(train_dir, "checkpoints")).endswith("ckpt-4")
  assert sorted(os.listdir(train_dir)) == [
      "checkpoints", "config.json", "history.jsonl", "logs", "weights"]
  assert "step 4/4" in outputs[0] and "step 4/4" not in outputs[1]


def _losses(train_dir):
  return [l["loss"] for l in map(json.loads, open(
      os.path.join(train_dir, "history.jsonl"))) if l["kind"] == "train"]


def test_mirrored_two_cpus_follows_single_device_trajectory(start_training,
                                                            tmp_path):
  flags = {"default": [], "mirrored": ["--cpu_devices=2"]}
  runs = {strategy: start_training(
              *TINY, f"--train_dir={tmp_path / strategy}", "--steps=6",
              "--log_every=1", f"--strategy={strategy}", *extra)
          for strategy, extra in flags.items()}  # Side by side: independent.
  losses = {}
  for strategy, run in runs.items():
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output[-3000:]
    losses[strategy] = _losses(str(tmp_path / strategy))
  assert len(losses["default"]) == 6
  # Each replica must see its half of the same global batch, gradients must
  # be aggregated and the metrics averaged over replicas; steps differ by 30 %
  # from one batch to the next, float reordering alone by far below 1e-3.
  np.testing.assert_allclose(losses["mirrored"], losses["default"], rtol=1e-3)
