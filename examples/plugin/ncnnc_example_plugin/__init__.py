"""An outside ncnnc plugin package; each module registered in ``pyproject.toml`` is one plugin."""
