"""Evaluation records which library versions produced its numbers, and a
saved run can be extended with more codecs."""

import importlib.metadata
import json
import os
import subprocess
import sys

from PIL import Image
import pytest
import tensorflow_compression  # pylint: disable=unused-import

from tests.conftest import REPO, smooth_image
from tfc_lic import evaluation


def test_environment_names_the_installed_tfc_version():
  """tfc has no __version__: the record once said "unknown"."""
  versions = evaluation.environment()["versions"]
  assert versions["tensorflow-compression"] == importlib.metadata.version(
      "tensorflow-compression") != "unknown"


def _evaluate(*flags):
  return subprocess.run(
      [sys.executable, "bin/evaluate.py", *flags], cwd=REPO,
      env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
      timeout=600)


def test_add_codecs_extends_a_saved_run(tmp_path):
  images = tmp_path / "images"
  images.mkdir()
  for seed in (0, 1):
    Image.fromarray(smooth_image(192, 200, seed)).save(images / f"{seed}.png")
  first = _evaluate(f"--images={images}", "--codecs=jpeg",
                    "--settings=jpeg=20,60", "--anchor=jpeg",
                    f"--output_dir={tmp_path / 'first'}")
  assert first.returncode == 0, first.stderr
  saved = tmp_path / "first" / "rd.json"
  extended = _evaluate(f"--results={saved}", "--add_codecs=webp",
                       "--settings=webp=30,80", "--anchor=jpeg",
                       f"--output_dir={tmp_path / 'extended'}")
  assert extended.returncode == 0, extended.stderr
  with open(saved) as f:
    before = json.load(f)
  with open(tmp_path / "extended" / "rd.json") as f:
    after = json.load(f)
  assert after["codecs"]["jpeg"] == before["codecs"]["jpeg"]
  assert [r["setting"] for r in after["codecs"]["webp"]["results"]] == [30, 80]
  assert [row["name"] for row in after["bd"]["jpeg"]] == ["webp"]


def test_add_codecs_without_results_is_a_one_line_error(tmp_path):
  result = _evaluate(f"--images={tmp_path}", "--add_codecs=webp",
                     f"--output_dir={tmp_path / 'out'}")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --add_codecs extends a saved run: pass --results")
  assert not (tmp_path / "out").exists()


def test_select_curves_keeps_order_and_rejects_a_pattern_matching_nothing():
  names = ["jpeg", "webp", "m-v14:tcq8", "m-v15:usq", "m-v15:tcq8"]
  assert evaluation.select_curves(names, ["*-v15*", "jpeg"]) == [
      "jpeg", "m-v15:usq", "m-v15:tcq8"]
  assert evaluation.select_curves(names, ["*"]) == names
  with pytest.raises(ValueError, match="--plot=webpp matches none"):
    evaluation.select_curves(names, ["webp", "webpp"])


def test_plot_pattern_matching_nothing_fails_before_encoding(tmp_path):
  result = _evaluate(f"--images={tmp_path}", "--codecs=jpeg", "--anchor=jpeg",
                     "--plot=jpg",
                     f"--output_dir={tmp_path / 'out'}")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --plot=jpg matches none of the curves (jpeg)")
  assert not (tmp_path / "out").exists()


def test_images_are_a_folder_or_globs(tmp_path):
  """Globs pick a subset (e.g. a held-out split of a training folder)."""
  for name in ("a1.png", "a2.png", "b1.png"):
    Image.fromarray(smooth_image(8, 8)).save(tmp_path / name)
  assert list(evaluation.load_images(str(tmp_path))) == [
      "a1.png", "a2.png", "b1.png"]
  assert list(evaluation.load_images(
      f"{tmp_path}/b*.png,{tmp_path}/a2.png")) == ["a2.png", "b1.png"]
  (tmp_path / "sub").mkdir()
  Image.fromarray(smooth_image(8, 8)).save(tmp_path / "sub" / "a1.png")
  with pytest.raises(ValueError, match="two images named a1.png"):
    evaluation.load_images(f"{tmp_path}/a1.png,{tmp_path}/sub/*.png")
