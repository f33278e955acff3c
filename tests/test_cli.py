"""The installed commands: they run from any directory and find the model by
the documented rule (--model path, $TFC_LIC_MODELS, the checkout's zoo);
the library imports without the optional eval extra."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, TESTDATA
from tfc_lic import zoo

COMMANDS = ("compress", "decompress", "train", "finetune", "export",
            "evaluate", "tune-tcq", "benchmark")


def _command(name):
  """The console script pip installed beside this interpreter."""
  return os.path.join(os.path.dirname(sys.executable), f"tfc-lic-{name}")


def _fake_saved_model(folder, version):
  os.makedirs(os.path.join(folder, str(version)))
  open(os.path.join(folder, str(version), "saved_model.pb"), "w").close()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_installed(name):
  assert os.access(_command(name), os.X_OK), _command(name)


def test_zoo_names_are_looked_up_in_the_environment_first(tmp_path,
                                                          monkeypatch):
  first, second = tmp_path / "first", tmp_path / "second"
  for folder, version in ((first, 3), (second, 7)):
    _fake_saved_model(str(folder / "mine"), version)
  _fake_saved_model(str(second / zoo.DEFAULT_MODEL), 99)
  monkeypatch.setenv(zoo.MODELS_ENV, os.pathsep.join(map(str, (first,
                                                               second))))
  assert zoo.find("mine") == str(first / "mine" / "3")
  assert zoo.find(zoo.DEFAULT_MODEL) == str(
      second / zoo.DEFAULT_MODEL / "99")
  assert zoo.find(str(second / "mine")) == str(second / "mine" / "7")
  monkeypatch.delenv(zoo.MODELS_ENV)
  assert os.path.dirname(zoo.find(zoo.DEFAULT_MODEL)) == os.path.join(
      zoo.CHECKOUT_MODELS, zoo.DEFAULT_MODEL)


def test_an_unknown_model_says_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.setenv(zoo.MODELS_ENV, str(tmp_path))
  with pytest.raises(FileNotFoundError, match=(
      f"no model 'nope': .*{tmp_path}.*set {zoo.MODELS_ENV}")):
    zoo.find("nope")


def test_commands_round_trip_from_another_directory(tmp_path):
  """A photo in the working directory, relative paths, the default model
  found through $TFC_LIC_MODELS under another name."""
  shutil.copy(os.path.join(TESTDATA, "kodim23.png"), tmp_path / "photo.png")
  models = tmp_path / "models"
  models.mkdir()
  os.symlink(os.path.join(zoo.CHECKOUT_MODELS, zoo.DEFAULT_MODEL),
             models / "renamed")
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env[zoo.MODELS_ENV] = str(models)
  for args in (["compress", "--input=photo.png", "--model=renamed"],
               ["decompress", "--input=photo.png.tlic", "--model=renamed",
                "--reference=photo.png"]):
    result = subprocess.run([_command(args[0]), *args[1:]], cwd=tmp_path,
                            env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
  assert "PSNR" in result.stdout
  assert os.path.getsize(tmp_path / "photo.png.tlic.png") > 0


def test_missing_model_is_a_one_line_error(tmp_path):
  (tmp_path / "x").write_bytes(b"TLIC")
  result = subprocess.run(
      [_command("decompress"), "--input=x", "--model=nowhere"], cwd=tmp_path,
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, **{zoo.MODELS_ENV: str(tmp_path)}))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: no model 'nowhere'")


def test_library_imports_without_the_eval_extra():
  """matplotlib is optional: evaluation imports, and a plot says what to
  install."""
  code = ("import sys; sys.modules['matplotlib'] = None\n"
          "from tfc_lic import evaluation, plotting\n"
          "try:\n  plotting.new_figure(1, 1)\n"
          "except ImportError as e:\n  print(e)\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == ("plots need matplotlib: pip install "
                                   "'tfc-lic[eval]'")


def test_decompress_refuses_a_device_before_loading_the_model(tmp_path):
  result = subprocess.run(
      [_command("decompress"), "--input=/dev/zero", "--output=out.png"],
      cwd=tmp_path, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: /dev/zero: not a regular file")
  assert os.listdir(tmp_path) == []


def test_decode_budget_is_checked_before_decoding(tmp_path):
  """--max_pixels refuses a stream by its header's size, before the model
  is loaded (a crafted header claims what it likes)."""
  from tfc_lic import container  # pylint: disable=g-import-not-at-top
  stream = bytearray(container.MAGIC + bytes([container.VERSION]) + bytes(
      container.header_size(1) + container.CHECKSUM_SIZE))
  stream[13:17] = (3000).to_bytes(2, "big") + (4000).to_bytes(2, "big")
  (tmp_path / "big.tlic").write_bytes(bytes(stream))
  assert container.image_size(bytes(stream)) == (3000, 4000)
  result = subprocess.run(
      [_command("decompress"), "--input=big.tlic", "--max_pixels=1000000",
       "--model=nowhere"], cwd=tmp_path, capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: big.tlic: a 4000x3000 image, above the decode budget of "
      "1000000 pixels (--max_pixels)")
