"""A base for trainer callbacks that can be built before transformers is imported.

transformers' Trainer calls `getattr(callback, "on_<event>")(args, state, control, **kwargs)`
on every callback it holds; this base answers every `on_*` event with a no-op, so a subclass
defines only the events it needs. It deliberately does not subclass transformers'
TrainerCallback: the steps build their callbacks before training starts, and with the Unsloth
backend nothing may import transformers before Unsloth (prefalign.train.unsloth_backend).
"""

from __future__ import annotations


class Callback:
    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return _ignore
        raise AttributeError(name)


def _ignore(*args, **kwargs):
    return None
