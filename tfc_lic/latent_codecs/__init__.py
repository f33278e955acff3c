"""Latent codecs: one unit per way of quantizing and range coding y.

Each codec quantizes the gained latents around the hyperprior's mean, codes
the indexes with the shared `EntropyTables`, and decodes them back to the same
y_hat. All of it is TensorFlow graph code, so it runs inside a SavedModel.
"""

from tfc_lic import settings
from tfc_lic.latent_codecs.tcq import TrellisCodedQuantizer
from tfc_lic.latent_codecs.usq import UniformQuantizer

# Container ids of the quantizers; never renumber (streams on disk use them).
QUANTIZER_IDS = {"usq": 0, "tcq4": 1, "tcq8": 2}


def create(name, tables, tcq_lambda=settings.TCQ_LAMBDA):
  """The latent codec called `name` ("usq", "tcq4" or "tcq8")."""
  if name == "usq":
    return UniformQuantizer(tables)
  if name in ("tcq4", "tcq8"):
    return TrellisCodedQuantizer(tables, num_states=int(name[3:]),
                                 lmbda=tcq_lambda)
  raise ValueError(f"unknown quantizer {name!r}; choose from "
                   f"{sorted(QUANTIZER_IDS)}")
