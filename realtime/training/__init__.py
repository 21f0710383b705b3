"""Training code: what makes the model, never loaded by the live server.

`corpus` (synthetic speech + teacher motion + instructions), `catalogue` (every instruction text of the corpus),
`annotate` (real footage → motion → action units → instruction text), `generator` (the training loop).
This package may import live code (the teacher, the model, the renderer's rig); live code never imports it
(an import-linter contract in pyproject.toml, checked in CI).
"""
