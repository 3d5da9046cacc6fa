"""Packaging glue that pyproject.toml cannot express: the top-level conf/ (the single source of the
Hydra configs) ships inside the wheel as the package `tpri.conf`, which `tpri-train` reads as
`pkg://tpri.conf` in a regular install; tpri's Hydra plugins ship as `hydra_plugins.tpri_plugins`
(Hydra finds plugins in that namespace only). Everything else lives in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tpri", "tpri.*"]) + ["tpri.conf", "hydra_plugins.tpri_plugins"],
    package_dir={"tpri.conf": "conf"},
    package_data={"tpri.conf": ["*.yaml", "**/*.yaml"]},
)
