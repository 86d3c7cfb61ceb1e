"""The engine's event bus and control socket from Python (proto/bus.proto over ZeroMQ).

`bus_pb2` is generated (`python -m appliance.bus.codegen`); `client` subscribes to events and
sends control requests; `monitor` folds events into a live view; `cli_bus` holds the `ctl`,
`monitor` and `run` commands.
"""
