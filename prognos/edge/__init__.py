"""The gateway agent: acquisition, windows, features, detectors, uplink."""

from pathlib import Path

# The model bundle that ships with the package: a gateway seeds its model store from it.
SHIPPED_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "artifacts"
