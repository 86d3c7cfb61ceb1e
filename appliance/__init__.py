"""py_rt appliance: compile, validate and render trading deployments declared in conf/."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source of truth: pyproject's [project] version, as installed.
    __version__ = version("py-rt-appliance")
except PackageNotFoundError:  # a source tree that was never installed (no `make setup`)
    __version__ = "0+unknown"
