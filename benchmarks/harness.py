"""What the benchmarks share (imported as ``benchmarks.harness`` once the repository is on
``sys.path``): today the model and training recipe of the two completion benchmarks,
``pcn_demo.py`` and ``dvr_tables.py``, so that both train the same way."""

from __future__ import annotations

from pathlib import Path

from sdf_autodec.nn.mlp import DecoderConfig
from sdf_autodec.shapes.train import TrainConfig


def completion_training(work: Path, epochs: int, width: int = 128) -> TrainConfig:
    """The completion benchmarks' training of ``work/data`` into ``work/run``: the small decoder
    (``conf/model/small.yaml``'s 5 layers with a skip at 3, here ``width`` wide) with a 64-dimensional
    code, 8 scenes × 2048 samples per step, the learning rates halved once, half-way through
    ``epochs``, and the code prior ramped up over the first tenth."""
    model = DecoderConfig(latent_size=64, depth=5, width=width, skip_layers=[3], weight_norm=True, dropout=0.0, output_tanh=True)
    return TrainConfig(
        data=str(work / "data"), run=str(work / "run"), model=model, epochs=epochs, scenes_per_batch=8, samples_per_scene=2048,
        lr_decoder=2e-3, lr_codes=4e-3, lr_halve_every=max(1, epochs // 2), code_reg_rampup_epochs=max(1, epochs // 10),
        checkpoint_every=50, progress=False,
    )
