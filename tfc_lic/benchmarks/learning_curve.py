"""Where more of the same training leads: L(t) = L_inf + A (t / 10^4)^-a
fitted to a run's averaged validation loss, and extrapolated."""

import json

import numpy as np
from scipy import optimize

from tfc_lic import plotting
from tfc_lic.benchmarks import harness


def _curve(t, floor, scale, power):
  return floor + scale * (t / 1e4) ** -power


def run(output_dir, history, fit_from, project_to):
  """Fits the averaged validation losses of `history` (a run's
  history.jsonl) from step `fit_from` on and projects them to the steps of
  `project_to`; writes learning_curve.{json,png} and returns the JSON."""
  try:
    with open(history) as f:
      points = sorted((r["step"], r["loss"]) for r in map(json.loads, f)
                      if r["kind"] == "validation_average")
  except (ValueError, KeyError) as e:
    raise ValueError(f"{history} is not a run's history.jsonl ({e})") from None
  if sum(step >= fit_from for step, _ in points) < 4:
    raise ValueError(f"fewer than 4 averaged validations from step {fit_from} "
                     f"in {history}")
  steps, losses = (np.array(v, np.float64) for v in zip(*points))
  fitted = steps >= fit_from
  try:
    params, _ = optimize.curve_fit(_curve, steps[fitted], losses[fitted],
                                   p0=(losses[-1] * 0.9, 0.5, 1.),
                                   maxfev=20000)
  except RuntimeError as e:
    raise RuntimeError(f"the fit did not converge ({e})") from None
  floor, scale, power = (float(v) for v in params)
  projections = {int(t): float(_curve(t, *params)) for t in project_to}
  residual = np.std(losses[fitted] - _curve(steps[fitted], *params))
  print(f"L(t) = {floor:.4f} + {scale:.4f} (t / 1e4)^-{power:.3f} "
        f"(steps {int(steps[fitted][0])}-{int(steps[-1])}, "
        f"rms residual {residual:.5f})")
  print(f"last: step {int(steps[-1])} loss {losses[-1]:.4f}")
  for t, loss in projections.items():
    print(f"at step {t:8d}: {loss:.4f} ({loss / losses[-1] - 1:+.2%})")
  fig = plotting.new_figure(7, 4)
  ax = fig.add_subplot()
  ax.plot(steps, losses, "o", ms=3, label="averaged validation")
  t = np.geomspace(steps[fitted][0], max(projections), 200)
  ax.plot(t, _curve(t, *params), label=f"fit, floor {floor:.3f}")
  ax.set_xscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("validation loss")
  ax.legend()
  result = dict(history=history, fit_from=fit_from,
                fit=dict(floor=floor, scale=scale, power=power),
                projections=projections,
                points=[dict(step=int(a), loss=float(b)) for a, b in points])
  harness.write(output_dir, "learning_curve", result, fig)
  return result
