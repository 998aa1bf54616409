"""Optional dependencies. The pipeline steps need only ``project.dependencies`` (what the step
images install); features outside the steps live in extras that ``make setup`` installs and are
imported through :func:`require`, so a missing one is one line naming the extra to install:

- ``cluster``: the Docker SDK (``disco.images`` with a Docker daemon) and the Vertex AI SDK
  (``disco vertex-submit``);
- ``demo``: ``pretty_midi``'s General MIDI SoundFont for ``disco demo-data`` (``tinysoundfont``, the
  synthesizer, is installed with ``--no-deps`` from ``requirements/nodeps-demo.txt``: its PyAudio
  requirement is for live playback and needs PortAudio headers to build);
- ``tune``: Keras Tuner for ``disco train --tune``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from disco.errors import MissingExtraError

# Module -> (extra, pip requirement that provides it). pyproject.toml's optional-dependencies are
# the other half; tests/test_dependencies.py keeps the two in step.
EXTRA_MODULES: dict[str, tuple[str, str]] = {
    "docker": ("cluster", "docker"),
    "google.cloud.aiplatform": ("cluster", "google-cloud-aiplatform"),
    "pretty_midi": ("demo", "pretty_midi"),
    "tinysoundfont": ("demo", "tinysoundfont"),
    "keras_tuner": ("tune", "keras-tuner"),
}


def install_hint(module: str) -> str:
    extra, requirement = EXTRA_MODULES[module]
    if module == "tinysoundfont":
        return "pip install --no-deps -r requirements/nodeps-demo.txt (make setup does)"
    return f"pip install 'disco[{extra}]' (make setup does; {requirement} is not in the step images)"


def require(module: str, *, feature: str) -> ModuleType:
    """Import an optional module, or raise :class:`MissingExtraError` naming the extra."""
    if module not in EXTRA_MODULES:
        raise KeyError(f"{module} is not an optional dependency of disco ({sorted(EXTRA_MODULES)})")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRA_MODULES[module][0]
        raise MissingExtraError(
            f"{feature} needs {module} from disco's '{extra}' extra, which is not installed: "
            f"{install_hint(module)}"
        ) from exc
