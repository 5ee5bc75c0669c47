"""sdf-autodec: autodecoders (DeepSDF) for 3D shapes and images.

Layers, from the bottom up (imports point downwards only; see DESIGN.md):
``geometry`` (numpy/torch maths) → ``nn`` (decoders) → ``core`` (domain-free autodecoder)
→ ``shapes`` / ``images`` (domains) → ``cli`` (thin Hydra apps).
``data_prep`` (mesh preprocessing) sits beside them and is imported only by the CLI.
"""

__version__ = "0.1.0"
