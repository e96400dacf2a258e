"""Only maps the folder plugins/ to the import package ``mmbind_plugins``; the rest is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mmbind", "mmbind.*"])
    + ["mmbind_plugins"]
    + [f"mmbind_plugins.{p}" for p in find_packages("plugins")],
    package_dir={"mmbind_plugins": "plugins"},
)
