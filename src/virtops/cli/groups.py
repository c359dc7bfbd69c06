"""A click group whose subcommands are imported only when used, so `virtops X` starts fast."""
from __future__ import annotations

import importlib
import importlib.util

import click


class LazyGroup(click.Group):
    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None,
                 aliases: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}
        self.aliases = aliases or {}  # alias -> (group, subcommand), e.g. virsh's net-list

    def list_commands(self, ctx: click.Context) -> list[str]:
        available = {name for name, target in self.lazy_subcommands.items()
                     if importlib.util.find_spec(target.split(":")[0]) is not None}
        return sorted({*super().list_commands(ctx), *available})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.aliases:
            group_name, sub_name = self.aliases[name]
            group = self.get_command(ctx, group_name)
            return group.get_command(ctx, sub_name) if isinstance(group, click.Group) else None
        if name in self.lazy_subcommands:
            module_name, attr = self.lazy_subcommands[name].split(":")
            if importlib.util.find_spec(module_name) is None:
                return None  # a face not built yet
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)
