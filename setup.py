"""Package discovery for the layout of pyproject.toml's [tool.setuptools] (everything else lives there).

`[tool.setuptools.packages.find]` cannot give a found folder a name prefix, and ./cli and ./targets
are installed as pdd_edge.cli and pdd_edge.targets; so packages are found here, with the prefix, and
a new subpackage can never be left out of the wheel by a hand-written list.
"""

from setuptools import find_packages, setup

# folder in the source tree -> its package name once installed (package-dir in pyproject.toml)
PREFIXED = {"cli": "pdd_edge.cli", "targets": "pdd_edge.targets"}

packages = find_packages(include=["pdd_edge", "pdd_edge.*"])
for folder, name in PREFIXED.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages)
