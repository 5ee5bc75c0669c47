"""How every subcommand is built: a typed schema in Hydra's ConfigStore, a YAML preset in ``conf/``
(shipped inside the package as ``sdf_autodec.conf``), and a plain library function.

``hydra_app(name, schema, run)`` returns a ``main()`` that composes ``conf/<name>.yaml`` (which
extends ``<name>_schema``) with the command-line overrides, converts the result to the schema's
dataclass, and calls ``run(cfg)``. Expected failures (bad input) print one line and exit 2.
"""

from __future__ import annotations

import sys
from typing import Callable

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from data_prep.mesh_io import MeshError
from sdf_autodec.core.checkpoint import CheckpointError
from sdf_autodec.errors import first_line
from sdf_autodec.storage.layout import DatasetError
from sdf_autodec.nn.mlp import DecoderConfig
from sdf_autodec.nn.registry import BackendUnavailable
from sdf_autodec.optional import MissingDependency
from sdf_autodec.shapes.mesh import EmptyLevelSet
from sdf_autodec.shapes.scans import ScanError

CONFIG_PATH = "pkg://sdf_autodec.conf"

EXPECTED_ERRORS = (
    CheckpointError,
    DatasetError,
    MeshError,
    ScanError,
    EmptyLevelSet,
    MissingDependency,
    BackendUnavailable,
    FileNotFoundError,
    ValueError,
)

_store = ConfigStore.instance()
_store.store(group="model", name="schema", node=DecoderConfig)


def fail(command: str, message: str) -> None:
    """Print one line naming the command and the problem, then exit with status 2."""
    print(f"sdf-autodec {command}: error: {message}", file=sys.stderr)
    sys.exit(2)


def hydra_app(name: str, schema: type, run: Callable) -> Callable[[], None]:
    """A ``main()`` for subcommand ``name`` (see module docstring)."""
    _store.store(name=f"{name}_schema", node=schema)

    @hydra.main(config_path=CONFIG_PATH, config_name=name, version_base=None)
    def main(cfg) -> None:
        typed = OmegaConf.to_object(cfg)
        try:
            run(typed)
        except EXPECTED_ERRORS as e:
            fail(name, first_line(e))

    return main
