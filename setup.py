"""tfc-lic: a learned image codec on TensorFlow Compression."""

import setuptools

setuptools.setup(
    name="tfc-lic",
    version="0.1.0",
    description="Learned image codec (hyperprior, USQ/TCQ, stage-2 "
                "synthesis finetuning) on tensorflow-compression",
    packages=setuptools.find_packages(include=["tfc_lic", "tfc_lic.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=[
        "tensorflow~=2.14.1",
        "tensorflow-compression==2.14.1",
        "tensorflow-probability~=0.22.0",
        "tensorflow-datasets~=4.9.0",
        # tensorflow-metadata >= 1.15 needs protobuf >= 5; TF 2.14 pins < 5.
        "tensorflow-metadata<1.15",
        "scipy~=1.11.0",
        "numpy<2",
        "absl-py",
        "Pillow",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        "eval": ["pillow-heif", "matplotlib", "tqdm"],
    },
)
