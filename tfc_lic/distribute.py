"""tf.distribute strategies for training: one flag from a laptop to a cluster.

  default                 one device (what runs without a flag)
  mirrored                all local GPUs (or logical CPUs) of one machine
  multi_worker_mirrored   synchronous data parallelism over the machines in
                          TF_CONFIG; every worker runs the same command
  tpu                     a Cloud TPU (--tpu names it)

The batch size is global: each of the N replicas gets batch/N crops and the
gradients are averaged, so a run's hyper-parameters do not depend on N.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")


def split_cpu(num_devices):
  """Splits the CPU into logical devices (mirrored training without GPUs).

  Must run before TensorFlow initialises its devices.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def create_strategy(name, tpu=None):
  """The tf.distribute.Strategy called `name` (see the module docstring)."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)
  if name == "multi_worker_mirrored":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("multi_worker_mirrored needs TF_CONFIG (the cluster "
                       "and this worker's task)")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


def task(strategy):
  """(task type, task id) of this process; (None, None) outside a cluster."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return None, None
  return resolver.task_type, resolver.task_id


def is_chief(strategy):
  """True for the process that writes checkpoints, logs and weights."""
  task_type, task_id = task(strategy)
  if task_type is None or task_type == "chief":
    return True
  cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  return task_type == "worker" and task_id == 0 and "chief" not in cluster


def distribute(strategy, make_dataset, global_batch_size):
  """A distributed dataset from make_dataset(batch, num_shards, shard_index).

  Each input pipeline (one per worker) reads its own shard of the files with
  its own seed and batches per replica.
  """
  def dataset_fn(context):
    return make_dataset(context.get_per_replica_batch_size(global_batch_size),
                        context.num_input_pipelines, context.input_pipeline_id)

  return strategy.distribute_datasets_from_function(dataset_fn)
