"""Stage-1 training: the loss falls, and a killed run resumes where it was."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, TINY_CONFIG, smooth_image
from tfc_lic import training


def _tiny_model(seed=0):
  tf.keras.utils.set_random_seed(seed)
  return training.model_from_config(TINY_CONFIG)


def test_loss_decreases_over_100_steps():
  model = _tiny_model()
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  images = np.stack([smooth_image(96, 96, seed=i) for i in range(8)])
  dataset = tf.data.Dataset.from_tensor_slices(images).repeat().map(
      lambda x: tf.cast(tf.image.random_crop(x, (64, 64, 3)), tf.float32)
  ).batch(4)
  step = tf.function(model.train_step)
  losses = []
  for batch in dataset.take(100):
    for metric in model.metrics:
      metric.reset_state()
    losses.append(float(step(batch)["loss"]))
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_loaded_weights_validate_as_the_saved_model_did(tmp_path):
  """Saved weights hold the metrics' running sums; a loaded model starts
  them afresh, so its first test_step reads these images only."""
  images = tf.constant(np.stack([smooth_image(64, 64, seed=i)
                                 for i in range(2)]), tf.float32)
  saved = _tiny_model()
  saved.test_step(images + 40.)
  training.save_compact_weights(saved, tmp_path / "weights.npz")
  loaded = _tiny_model(seed=1)
  training.load_weights(loaded, str(tmp_path / "weights.npz"))
  expected = np.mean([loaded(images, tf.fill([2], r))[0]
                      for r in range(loaded.num_rates)])
  assert float(loaded.test_step(images)["loss"]) == pytest.approx(
      expected, rel=1e-6)


TINY = "--flagfile=configs/tiny-test.cfg"


def _weights(train_dir, prefix):
  config = training.load_config(os.path.join(train_dir, "config.json"))
  model = training.model_from_config(config)
  training.load_weights(model, prefix)
  return np.concatenate([v.numpy().ravel() for v in model.trainable_variables])


@pytest.mark.slow  # 77 s; resuming is tested in-process elsewhere here
def test_sigkill_then_resume_continues(start_training, tmp_path):
  train_dir = str(tmp_path / "run")
  checkpoints = os.path.join(train_dir, "checkpoints")
  process = start_training(TINY, f"--train_dir={train_dir}", "--steps=100000",
                           "--checkpoint_every=3", "--validate_every=0")
  deadline = time.time() + 300
  # At least step 6 (with fast steps the newest may already be past it).
  while int((tf.train.latest_checkpoint(checkpoints) or "-0").rsplit(
      "-", 1)[1]) < 6:
    assert time.time() < deadline, "no checkpoint at step >= 6 in 300 s"
    assert process.poll() is None, process.stdout.read()
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = tf.train.latest_checkpoint(checkpoints)
  step = int(killed_at.rsplit("-", 1)[1])
  assert step >= 6
  before = _weights(train_dir, killed_at)

  resumed = start_training(TINY, f"--train_dir={train_dir}",
                           f"--steps={step + 1}", "--validate_every=0")
  output, _ = resumed.communicate(timeout=300)
  assert resumed.returncode == 0, output
  history = [json.loads(l) for l in open(
      os.path.join(train_dir, "history.jsonl"))]
  assert history[-1]["step"] == step + 1
  after = _weights(train_dir, tf.train.latest_checkpoint(checkpoints))
  assert tf.train.latest_checkpoint(checkpoints).endswith(f"-{step + 1}")
  # One more Adam step (lr 1e-3) moves each weight by about 1e-3; a restart
  # from a fresh initialisation would be far away.
  assert 0 < np.max(np.abs(after - before)) < 5e-3


@pytest.fixture(scope="module")
def four_steps(tmp_path_factory):
  """A finished 4-step run (logged every 2 steps); tests copy, not change it."""
  train_dir = str(tmp_path_factory.mktemp("four_steps") / "run")
  done = subprocess.run(
      [sys.executable, "bin/train.py", TINY, f"--train_dir={train_dir}",
       "--steps=4", "--log_every=2", "--validate_every=0"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
      text=True, timeout=300)
  assert done.returncode == 0, done.stdout + done.stderr
  return train_dir


def test_continued_run_stops_on_sigterm_mid_validation(start_training,
                                                       four_steps, tmp_path):
  """A run continued from compact weights carries on their steps and history.
  A stop signal during a validation (minutes on the shipped config) stops it
  without finishing or recording the validation; the step is checkpointed
  and the run exits with status 1."""
  second = str(tmp_path / "second")
  compact = tmp_path / "compact"
  compact.mkdir()
  model = training.model_from_config(
      training.load_config(os.path.join(four_steps, "config.json")))
  training.load_weights(model, four_steps)
  training.save_compact_weights(model, str(compact / training.COMPACT_WEIGHTS))
  history = open(os.path.join(four_steps, "history.jsonl")).read()
  (compact / "history.jsonl").write_text(history)

  run = start_training(TINY, f"--train_dir={second}", "--steps=100000",
                       "--log_every=1", "--checkpoint_every=1000",
                       "--validate_every=2", "--validation_patch_size=128",
                       "--validation=../shared/data/train/bsds500/val_1*",
                       f"--continue_from={compact}")
  lines = []
  for line in run.stdout:
    lines.append(line)
    if line.startswith("step 6/"):  # The validation of step 6 follows.
      run.send_signal(signal.SIGTERM)
      break
  output = "".join(lines) + run.communicate(timeout=120)[0]
  assert run.returncode == 1, output[-3000:]
  assert "continuing" in output and "at step 4" in output
  assert "validation of step 6 interrupted, not recorded" in output
  assert "validation step" not in output
  assert "stopped by signal 15 at step 6" in output.strip().splitlines()[-1]
  assert tf.train.latest_checkpoint(
      os.path.join(second, "checkpoints")).endswith("-6")
  history = [json.loads(l) for l in open(
      os.path.join(second, "history.jsonl"))]
  assert [(l["kind"], l["step"]) for l in history] == [
      ("train", step) for step in (2, 4, 5, 6)]
  assert history[-1]["wall_time"] > history[1]["wall_time"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(start_training,
                                                             tmp_path):
  """A learning rate of 1e12 blows the weights up within a few steps."""
  train_dir = str(tmp_path / "run")
  run = start_training(TINY, f"--train_dir={train_dir}", "--steps=200",
                       "--learning_rate=1e12", "--checkpoint_every=1",
                       "--log_every=1000", "--validate_every=0")
  output, _ = run.communicate(timeout=300)
  assert run.returncode == 1, output[-3000:]
  error = output.strip().splitlines()[-1]
  assert error.startswith("error: non-finite loss at step "), error
  step = int(error.split("at step ")[1].split()[0])
  latest = tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints"))
  assert latest.endswith(f"-{step - 1}") and latest in error
  assert np.all(np.isfinite(_weights(train_dir, latest)))


def test_run_resumes_in_another_precision(start_training, four_steps, tmp_path):
  """A run begun in bf16 (its config says so) carries on in float32, as on a
  machine without native bf16; another model config is refused."""
  train_dir = str(tmp_path / "run")
  shutil.copytree(four_steps, train_dir)
  path = os.path.join(train_dir, "config.json")
  config = dict(training.load_config(path), precision="bfloat16")
  with open(path, "w") as f:
    json.dump(config, f)
  second = start_training(TINY, f"--train_dir={train_dir}", "--steps=6",
                          "--precision=float32", "--validate_every=0")
  output, _ = second.communicate(timeout=300)
  assert second.returncode == 0, output
  assert tf.train.latest_checkpoint(
      os.path.join(train_dir, "checkpoints")).endswith("-6")
  other = start_training(TINY, f"--train_dir={train_dir}", "--steps=8",
                         "--lmbdas=0.02", "--validate_every=0")
  output, _ = other.communicate(timeout=300)
  assert other.returncode != 0 and "different model config" in output


def _tiny_trainer(train_dir, steps, average_decay, seed=0):
  return training.Trainer(_tiny_model(seed), train_dir, steps,
                          learning_rate=1e-2,
                          checkpoint_every=1, log_every=1, validate_every=2,
                          average_decay=average_decay)


def _tiny_crops():
  images = np.stack([smooth_image(64, 64, seed=i) for i in range(4)])
  return tf.data.Dataset.from_tensor_slices(images.astype(np.float32)).batch(2)


def _values(variables):
  return [v.numpy().copy() for v in variables]


def _distance(xs, ys):
  return max(np.max(np.abs(x - y)) for x, y in zip(xs, ys))


def test_weight_averages_follow_the_ramped_moving_average(tmp_path):
  """Each checkpoint's averages are decay·previous + (1 - decay)·weights,
  weights/ and export read the averages, and validation reports both."""
  train_dir = str(tmp_path / "run")
  trainer = _tiny_trainer(train_dir, 3, average_decay=0.2)
  start = _values(trainer.model.trainable_variables)
  trainer.fit(_tiny_crops().repeat(), _tiny_crops())
  history = [json.loads(l) for l in open(
      os.path.join(train_dir, "history.jsonl"))]
  kinds = [(l["kind"], l["step"]) for l in history if l["kind"] != "train"]
  assert kinds == [("validation", 0), ("validation", 2),
                   ("validation_average", 2),
                   ("validation", 3), ("validation_average", 3)]
  assert history[-1]["loss"] != history[-2]["loss"]

  previous = start
  for step in (1, 2, 3):
    trainer.checkpoint.read(os.path.join(
        train_dir, "checkpoints", f"ckpt-{step}")).assert_consumed()
    weights, averages = (_values(trainer.model.trainable_variables),
                         _values(trainer.averages))
    decay = min(0.2, (1 + step) / (10 + step))
    for p, w, a in zip(previous, weights, averages):
      np.testing.assert_allclose(a, decay * p + (1 - decay) * w, rtol=1e-5,
                                 atol=1e-6)
    assert any(not np.array_equal(w, a) for w, a in zip(weights, averages))
    previous = averages

  shipped = _tiny_model()
  assert training.load_weights(shipped, train_dir).endswith("weights")
  for v, a in zip(shipped.trainable_variables, previous):
    np.testing.assert_array_equal(v.numpy(), a)


def test_continued_run_averages_with_full_decay_from_its_start(tmp_path):
  """A run continued from committed weights (already an average) keeps them
  in its average at the full decay, not at the ramp of a new run."""
  # Other weights than a new run starts from (no training: a trace costs).
  committed = _tiny_model(seed=1)
  compact = tmp_path / "compact"
  compact.mkdir()
  training.save_compact_weights(
      committed, str(compact / training.COMPACT_WEIGHTS))
  # As if committed at step 1,000, where a new run's ramp would be > 0.99.
  (compact / "history.jsonl").write_text(
      json.dumps({"kind": "train", "step": 1000, "wall_time": 1.}) + "\n")
  second = _tiny_trainer(str(tmp_path / "second"), 1001, average_decay=0.9)
  assert second.continue_from(str(compact)) == 1000
  start = _values(second.model.trainable_variables)
  second.fit(_tiny_crops().repeat())
  weights, averages = (_values(second.model.trainable_variables),
                       _values(second.averages))
  for c, s in zip(committed.trainable_variables, start):  # Stored as float16.
    np.testing.assert_allclose(c.numpy(), s, rtol=1e-3, atol=1e-3)
  for s, w, a in zip(start, weights, averages):
    np.testing.assert_allclose(a, 0.9 * s + 0.1 * w, rtol=1e-5, atol=1e-6)
  assert any(not np.allclose(s, w) for s, w in zip(start, weights))


def test_run_continued_from_another_runs_weights_keeps_its_step(tmp_path):
  """A run's weights/ also hold its Adam state, step count included (Keras
  tracks a compiled model's optimizer): a run continued from that folder
  goes on at the history's step, with that Adam state, instead of adding
  the restored step count on top."""
  first_dir = str(tmp_path / "first")
  first = _tiny_trainer(first_dir, 2, average_decay=0.9)
  first.fit(_tiny_crops().repeat())
  source = tmp_path / "source"
  shutil.copytree(os.path.join(first_dir, "weights"), source / "weights")
  shutil.copy(os.path.join(first_dir, "history.jsonl"), source)
  second = _tiny_trainer(str(tmp_path / "second"), 3, average_decay=0.9)
  assert second.continue_from(str(source)) == 2
  assert int(second.optimizer.iterations.numpy()) == 2


def test_checkpoint_without_averages_resumes_with_averaging(tmp_path):
  """A run checkpointed before averaging existed resumes; its averages start
  from the restored weights, not from a fresh initialisation."""
  train_dir = str(tmp_path / "run")
  # Other weights than the run starts from (no training: a trace costs).
  before = _tiny_trainer(train_dir, 1, average_decay=None, seed=1)
  before.save()
  trainer = _tiny_trainer(train_dir, 1, average_decay=0.999)
  initial = _values(trainer.model.trainable_variables)
  trainer.restore()
  restored = _values(trainer.model.trainable_variables)
  for w, b in zip(restored, _values(before.model.trainable_variables)):
    np.testing.assert_array_equal(w, b)
  for w, a in zip(restored, _values(trainer.averages)):
    np.testing.assert_array_equal(w, a)
  trainer.fit(_tiny_crops().repeat())
  # One step at decay 2/11: averages begun at the initialisation would be
  # 2/11 of the way back to it; from the restored weights they move by about
  # one Adam step (lr 1e-2).
  moved = _distance(restored, _values(trainer.averages))
  assert moved < 0.5 * 2 / 11 * _distance(restored, initial), moved


@pytest.mark.parametrize("flags, error", [
    (["--batch_size=0"], "FATAL Flags parsing error: flag --batch_size=0"),
    (["--patch_size=-1"], "FATAL Flags parsing error: flag --patch_size=-1"),
    (["--steps=-5"], "FATAL Flags parsing error: flag --steps=-5"),
    (["--train_dir={file}"], "error: {file} is a file, not a run folder"),
    (["--dataset={unreadable}", "--validation=", "--steps=2"],
     "error: the training data gave no images (are any of its files "
     "readable?)")])
def test_bad_training_flags_are_one_line_errors(tmp_path, flags, error):
  """Each fails with exit code 1 and its reason on the last line, no
  traceback."""
  file, unreadable = tmp_path / "a_file", tmp_path / "unreadable"
  file.write_text("")
  unreadable.mkdir()
  (unreadable / "junk.png").write_bytes(b"not a png")
  names = dict(file=file, unreadable=unreadable)
  result = subprocess.run(
      [sys.executable, "bin/train.py", TINY,
       f"--train_dir={tmp_path / 'run'}",
       *(f.format(**names) for f in flags)],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert error.format(**names) in lines[-1] or (
      error.format(**names) in lines[-2]), lines[-2:]
