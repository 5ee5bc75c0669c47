"""Entry points: one console script ``sdf-autodec`` whose subcommands are thin Hydra apps."""
