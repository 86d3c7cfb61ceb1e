"""The config compiler: schema (pydantic), Hydra composition, cross-checks, diagnostics and
manifest rendering."""
