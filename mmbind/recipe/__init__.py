"""Recipes: TOML files that run a whole job, their schema (pydantic) and their loading.

``load_recipe(path)`` reads, validates and resolves a recipe before any work starts; an error
names the file, the table and field, and what is allowed, e.g.
``recipes/digits.toml: [bind] batch_size: expected an integer >= 1, got 0``.
Imports pydantic: command modules import this inside their functions.
"""
from mmbind.recipe.errors import ConfigError, RecipeError
from mmbind.recipe.loading import apply_overrides, load_recipe, parse_assignments, parse_recipe
from mmbind.recipe.schema import (
    AddedDataset,
    AnchorTable,
    BindConfig,
    DataConfig,
    EmbedConfig,
    EvalConfig,
    PretrainConfig,
    Recipe,
    RecipeFile,
    TowerTable,
    json_schema,
)
from mmbind.recipe.towers import BinderConfig, TowerConfig

__all__ = ["AddedDataset", "AnchorTable", "BindConfig", "BinderConfig", "ConfigError", "DataConfig", "EmbedConfig", "EvalConfig",
           "PretrainConfig", "Recipe", "RecipeError", "RecipeFile", "TowerConfig", "TowerTable", "apply_overrides",
           "json_schema", "load_recipe", "parse_assignments", "parse_recipe"]
