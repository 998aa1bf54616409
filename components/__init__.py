"""KFP v2 components: thin wrappers that call the ``disco`` library, typed artifacts in and out.

Each module holds the component's Python function and ``make_component(image)``, because KFP fixes
a lightweight component's ``base_image`` at decoration time and the image is an argument of the
pipeline factory (:func:`disco_pipelines.factory.make_pipeline`), never a module-level constant.
"""

from __future__ import annotations

from collections.abc import Callable

from disco.steps import STEP_NAMES


def component_factories() -> dict[str, Callable]:
    """``{step: make_component}`` for every step of :data:`disco.steps.STEPS` (imports kfp)."""
    import importlib

    return {name: importlib.import_module(f"{__name__}.{name}").make_component for name in STEP_NAMES}
