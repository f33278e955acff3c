"""tfc-lic: a learned image codec on TensorFlow Compression."""

import setuptools

setuptools.setup(
    name="tfc-lic",
    version="0.24.0",
    description="Learned image codec (hyperprior, USQ/TCQ, stage-2 "
                "synthesis finetuning) on tensorflow-compression",
    packages=setuptools.find_packages(include=["tfc_lic", "tfc_lic.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=[
        "tensorflow~=2.14.1",
        "tensorflow-compression==2.14.1",
        "tensorflow-probability~=0.22.0",
        "tensorflow-datasets~=4.9.0",
        # tensorflow-metadata 1.14 pins protobuf < 4.21, whose only Python 3.11
        # wheel is pure Python (SavedModels loaded 5x slower); 1.15 takes
        # protobuf 4.25 (C parser); the newest need protobuf 5, which TF 2.14
        # excludes.
        "tensorflow-metadata~=1.15.0",
        "protobuf>=4.25,<5",
        "scipy~=1.11.0",
        "numpy<2",
        "absl-py",
        "Pillow",
        "tqdm",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        # Plots (evaluation, benchmarks) and HEIF as a reference codec.
        "eval": ["pillow-heif", "matplotlib"],
    },
    entry_points={"console_scripts": [
        f"tfc-lic-{name.replace('_', '-')} = tfc_lic.cli.{name}:run"
        for name in ("compress", "decompress", "train", "finetune", "export",
                     "evaluate", "tune_tcq", "benchmark")]},
)
