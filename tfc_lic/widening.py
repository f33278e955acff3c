"""Warm start of a wider model from a narrower one (Net2WiderNet-style).

Each variable of the narrow model fills the leading block of the wide one's,
the new channels keep their fresh initialization, and every weight that reads
a new channel starts at zero. The wide model thus starts out computing the
narrow one's function exactly, and its new channels learn from there (Chen et
al. 2016, with zero outgoing weights instead of split ones): training can
grow a model's capacity without starting over.
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc


def input_axes(model):
  """{id(kernel variable): its input-channel axis} for every convolution."""
  axes = {}
  for layer in model.submodules:
    if getattr(layer, "rdft_kernel", None) is not None:  # [out, in, h, w']
      axes[id(layer.rdft_kernel.real)] = axes[id(layer.rdft_kernel.imag)] = 1
    elif isinstance(layer, tf.keras.layers.Conv2DTranspose):
      axes[id(layer.kernel)] = 3  # [height, width, out, in]
    elif isinstance(layer, tf.keras.layers.Conv2D):
      axes[id(layer.kernel)] = 2  # [height, width, in, out]
    elif isinstance(layer, tfc.SignalConv2D):
      kernel = layer.kernel_parameter
      if isinstance(kernel, tfc.RDFTParameter):  # [in, out, height, width']
        axes[id(kernel.real)] = axes[id(kernel.imag)] = 0
      else:
        axes[id(kernel)] = 2
  return axes


def widen(model, source):
  """Sets `model`'s variables from `source`, a model of the same architecture
  with fewer channels in some layers (see the module doc)."""
  targets, values = model.variables, source.variables
  if len(targets) != len(values):
    raise ValueError("the narrow model has another architecture")
  axes = input_axes(model)
  for target, variable in zip(targets, values):
    old = variable.numpy()
    if tuple(target.shape) == old.shape:
      target.assign(old)
      continue
    if any(n < o for n, o in zip(target.shape, old.shape)) or (
        target.shape.rank != old.ndim):
      raise ValueError(f"{variable.name} {old.shape} does not fit into "
                       f"{target.name} {tuple(target.shape)}")
    value = target.numpy()
    value[tuple(slice(0, d) for d in old.shape)] = old
    axis = axes.get(id(target))
    if axis is not None:
      reads_new = [slice(None)] * value.ndim
      reads_new[axis] = slice(old.shape[axis], None)
      value[tuple(reads_new)] = 0
    target.assign(value.astype(np.dtype(target.dtype.as_numpy_dtype)))
