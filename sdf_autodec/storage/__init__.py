"""The storage layer: every file format the toolkit writes or reads, each with one reader and one
writer in one module (``layout``: the data directory and ``latents.npz``; ``packed``: the packed
training store; ``dvr``: DVR's ground-truth clouds). Checkpoints and the run folder are the core's
(``core.checkpoint``, ``core.rundir``)."""
