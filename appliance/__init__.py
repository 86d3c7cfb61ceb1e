"""py_rt appliance: compile, validate and render trading deployments declared in conf/."""

__version__ = "0.1.0"
