"""bin/tune_tcq.py: its curves are the real streams' rates and PSNRs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tfc_lic import bd_rate
from tfc_lic import codec as codec_lib
from tfc_lic import image_io
from tfc_lic import metrics
from tfc_lic import training

# The zoo's stage-1 weights: a trained model, whose curves rise with rate
# (not the milestone folder, which moves on between exports).
RUN = os.path.join(REPO, "checkpoints", "mbt2018-mean-vr")
# Inside both curves on the crop below (common range 36.45-40.65 dB with v18's
# stage-1 weights, 36.65-40.67 with v17's; re-measure when the zoo is
# re-exported).
WINDOW = (37.0, 40.0)


@pytest.mark.slow  # 78 s: the tuning tool's end-to-end check
def test_curves_match_the_codecs_streams(kodim23, tmp_path):
  image = kodim23[:128, :192]
  images = tmp_path / "images"
  images.mkdir()
  (images / "a.png").write_bytes(image_io.encode_png(image))
  output = tmp_path / "tuning.json"
  result = subprocess.run(
      [sys.executable, "bin/tune_tcq.py", f"--run={RUN}",
       f"--images={images}", "--lambdas=0.25", "--delta_indexes=0",
       "--min_bpp=0", "--psnr_window=" + ",".join(map(str, WINDOW)),
       f"--output={output}"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  tuning = json.loads(output.read_text())

  config = training.load_config(os.path.join(RUN, "config.json"))
  model = training.model_from_config(dict(config, precision="float32"))
  training.load_weights(model, RUN)
  codec = codec_lib.ImageCodec(model, tcq_lambda=0.25)
  height, width = image.shape[:2]
  # The end points of each curve (every rate runs the same code path).
  ends = (0, model.num_rates - 1)
  for name, points in [("usq", tuning["usq"]),
                       ("tcq8", tuning["rows"][0]["points"])]:
    assert len(points) == model.num_rates
    expected = []
    for rate in ends:
      stream = codec.compress(image, codec_lib.quantizer_id(name),
                              float(rate), 0)
      expected.append((metrics.bpp(len(stream.numpy()), height, width),
                       metrics.psnr(image, codec.decompress(stream).numpy())))
    np.testing.assert_allclose([points[i] for i in ends], expected, rtol=1e-6)
  row = tuning["rows"][0]
  assert [row["lmbda"], row["delta_index"]] == [0.25, 0]
  assert row["bd_rate_vs_usq"] == pytest.approx(
      bd_rate.bd_rate(tuning["usq"], row["points"]), abs=1e-9)
  # Scored on the window, not on the whole common range.
  assert row["bd_rate_in_window"] == pytest.approx(bd_rate.bd_rate(
      tuning["usq"], row["points"], psnr_window=WINDOW), abs=1e-9)
  assert row["bd_rate_in_window"] != pytest.approx(row["bd_rate_vs_usq"])
  assert tuning["psnr_window"] == list(WINDOW)
  assert tuning["best"] == row
