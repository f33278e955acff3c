"""Figures drawn without a display, for evaluation and the benchmarks.

matplotlib is in the `eval` extra; it is imported only when a plot is made,
so that the rest of the library works without it.
"""


def new_figure(width, height):
  """A matplotlib Figure of width x height inches on the Agg canvas."""
  try:
    from matplotlib import figure  # pylint: disable=g-import-not-at-top
    from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("plots need matplotlib: pip install "
                      "'tfc-lic[eval]'") from None
  fig = figure.Figure(figsize=(width, height))
  backend_agg.FigureCanvasAgg(fig)
  return fig
