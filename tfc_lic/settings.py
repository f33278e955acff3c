"""The shipped codec settings, in one place.

They are the library's defaults, what `export` writes into a SavedModel's
metadata and what stage 2 trains its syntheses on; the Makefile, configs and
binaries read them from here. Chosen on held-out BSDS500 val images, never
Kodak (docs/quantizers.md).
"""

# The quantizer of the `compress` signature.
DEFAULT_QUANTIZER = "usq"
# TCQ's Viterbi cost D + λR, D in units of Δ².
TCQ_LAMBDA = 0.08
# Each quantizer's default step Δ = 2**(j/8).
DELTA_INDEXES = {"usq": 4, "tcq4": 4, "tcq8": 4}
# Latent refinement (tfc_lic.refinement): the factor c on the model's λ with
# which it weighs MSE, and Adam's first step.
REFINE_LAMBDA_SCALES = {"usq": 0.5, "tcq4": 0.5, "tcq8": 0.5}
REFINE_LEARNING_RATES = {"usq": 0.005, "tcq4": 0.01, "tcq8": 0.01}


def as_flag(values):
  """A per-quantizer dict as a list flag's default: ["usq=4", ...]."""
  return [f"{name}={value}" for name, value in values.items()]
