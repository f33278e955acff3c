"""Evaluation records which library versions produced its numbers."""

import importlib.metadata

import tensorflow_compression  # pylint: disable=unused-import

from tfc_lic import evaluation


def test_environment_names_the_installed_tfc_version():
  """tfc has no __version__: the record once said "unknown"."""
  versions = evaluation.environment()["versions"]
  assert versions["tensorflow-compression"] == importlib.metadata.version(
      "tensorflow-compression") != "unknown"
