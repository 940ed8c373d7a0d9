"""The workflow config: schema validation, each step's settings, presets, the config command, init."""
