"""Steering methods: each a frozen dataclass of tensors with a pure ``__call__(activation, hook)``."""
