"""bin/tune_tcq.py: its curves are the real streams' rates and PSNRs."""

import json
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO, TINY_CONFIG, smooth_image
from tfc_lic import codec as codec_lib
from tfc_lic import image_io
from tfc_lic import metrics
from tfc_lic import training


def test_curves_match_the_codecs_streams(tiny_model, tmp_path):
  run = str(tmp_path / "run")
  training.init_run_dir(run, TINY_CONFIG)
  training.save_compact_weights(
      tiny_model, os.path.join(run, training.COMPACT_WEIGHTS))
  images = tmp_path / "images"
  images.mkdir()
  image = smooth_image(64, 96)
  (images / "a.png").write_bytes(image_io.encode_png(image))
  output = tmp_path / "tuning.json"
  result = subprocess.run(
      [sys.executable, "bin/tune_tcq.py", f"--run={run}",
       f"--images={images}", "--lambdas=0.25", "--delta_indexes=0",
       "--min_bpp=0", f"--output={output}"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  tuning = json.loads(output.read_text())

  model = training.model_from_config(TINY_CONFIG)
  training.load_weights(model, run)
  codec = codec_lib.ImageCodec(model, tcq_lambda=0.25)
  for name, points in [("usq", tuning["usq"]),
                       ("tcq8", tuning["rows"][0]["points"])]:
    expected = []
    for rate in range(model.num_rates):
      stream = codec.compress(image, codec_lib.quantizer_id(name),
                              float(rate), 0)
      expected.append((metrics.bpp(len(stream.numpy()), 64, 96),
                       metrics.psnr(image, codec.decompress(stream).numpy())))
    np.testing.assert_allclose(points, expected, rtol=1e-6)
  row = tuning["rows"][0]
  assert [row["lmbda"], row["delta_index"]] == [0.25, 0]
  assert tuning["best"] == (row if row["bd_rate_vs_usq"] is not None else None)
