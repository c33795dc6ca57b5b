"""Pulumi's entry point (Pulumi.yaml: `main: infra/`). The program lives in the `infra` package."""

import sys
from pathlib import Path

# Pulumi runs this file with infra/ on sys.path; the package imports need the repository's root instead.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.stack import build

build()
