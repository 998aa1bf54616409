"""The pipeline factory: wires the components of :mod:`disco_components` into the disco KFP pipeline.

Everything that depends on where the pipeline runs (images, GPU requests, node pool labels,
retries) is an argument of :func:`make_pipeline`; nothing is read from the environment at import,
so compiling twice with the same arguments gives the same YAML. Everything that varies per *run*
(dataset, embedder, hyperparameters, seed) is a pipeline parameter.

GPU requests are factory arguments, not pipeline parameters: KFP resolves accelerator type and
limit, node selectors and tolerations when it compiles the pod spec, and neither the KFP backend
nor Vertex lets a runtime parameter add or remove them (``set_accelerator_limit`` accepts a
parameter for the count only, and a node selector / toleration from kfp-kubernetes is static).
A CPU-only cluster therefore gets a pipeline compiled with ``gpu=False``.
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's parameter types from
# real annotation objects.

from collections.abc import Callable
from dataclasses import dataclass

from disco import params, steps
from disco.errors import ConfigError

PIPELINE_DESCRIPTION = (
    "OpenMIC-2018 instrument recognition: resample -> augment -> embed (Beam) -> train (Keras) -> evaluate; "
    "or the release's precomputed VGGish features -> train -> evaluate."
)
DEFAULT_IMAGE = "localhost/disco/disco-cpu:dev"  # placeholder: `disco compile --image` sets the real tag

GPU_RESOURCE = "nvidia.com/gpu"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"


@dataclass(frozen=True)
class GpuConfig:
    """How a GPU step asks for a GPU. ``node_label_value`` names the GPU the GKE way (the node
    pool's accelerator label, e.g. ``nvidia-l4``); :meth:`accelerator_type` turns it into what the
    compile target reads."""

    accelerator_type: str = GPU_RESOURCE
    count: int = 1
    node_label_key: str = GKE_ACCELERATOR_LABEL
    node_label_value: str = params.DEFAULT_GPU_TYPE
    toleration_key: str = GPU_RESOURCE
    steps: tuple[str, ...] = steps.GPU_STEPS

    def accelerator_for(self, target: str) -> str:
        """The accelerator type the target's backend reads: the Kubernetes resource name for KFP,
        Vertex AI's accelerator name (``NVIDIA_TESLA_T4``...) for Vertex."""
        if target == "kfp":
            return self.accelerator_type
        try:
            return params.VERTEX_ACCELERATORS[self.node_label_value]
        except KeyError:
            raise ConfigError(
                f"GPU accelerator {self.node_label_value!r} has no Vertex AI name; "
                f"known: {sorted(params.VERTEX_ACCELERATORS)}"
            ) from None


DEFAULT_RESOURCES: dict[str, steps.Resources] = {s.name: s.resources for s in steps.STEPS}


def make_pipeline(
    *,
    image: str = DEFAULT_IMAGE,
    gpu_image: str | None = None,
    step_images: dict[str, str] | None = None,
    gpu: bool | GpuConfig = False,
    pipeline_name: str = params.PIPELINE_NAME,
    retries: int = 3,
    retry_backoff: str = "30s",
    caching: bool = True,
    resources: dict[str, steps.Resources] | None = DEFAULT_RESOURCES,
    target: str = params.DEFAULT_COMPILE_TARGET,
) -> Callable:
    """Build the disco pipeline function.

    Args:
        image: the CPU image every step runs in on a cluster (kfp.local runs it in-process's venv).
        gpu_image: image for the GPU steps (``disco.steps.GPU_STEPS``) when ``gpu`` is on; defaults to
            ``image``.
        step_images: per-step overrides ``{step: image}`` (per-step image targets), applied last.
        gpu: False for CPU-only clusters; True (GKE T4 defaults) or a :class:`GpuConfig` to request
            a GPU for embed and train, with a node selector and toleration for a GPU node pool.
        pipeline_name: the KFP pipeline name (and the compiled file's stem).
        retries: retries for steps that read remote storage (0 for a local run on local data).
        caching: KFP execution caching on every step.
        resources: cluster CPU/memory per step; None to leave them unset.
        target: ``kfp`` (open-source KFP on Kubernetes) or ``vertex`` (Vertex AI Pipelines); decides
            how GPU and resources are written (see :data:`disco.params.COMPILE_TARGETS`).
    """
    from kfp import dsl, kubernetes

    import disco_components

    if target not in params.COMPILE_TARGETS:
        raise ConfigError(f"compile target {target!r}: expected one of {params.COMPILE_TARGETS}")
    gpu_config = GpuConfig() if gpu is True else (gpu or None)
    # Fail at build time, not on the first GPU task, for an accelerator the target cannot name.
    accelerator = gpu_config.accelerator_for(target) if gpu_config is not None else None
    unknown = set(step_images or {}) - set(steps.STEP_NAMES)
    if unknown:
        raise ConfigError(f"step_images names unknown steps {sorted(unknown)}; steps are {steps.STEP_NAMES}")
    factories = disco_components.component_factories()

    def build(step: str):
        step_image = image
        if gpu_config is not None and step in gpu_config.steps and gpu_image:
            step_image = gpu_image
        if step_images and step in step_images:
            step_image = step_images[step]
        return factories[step](step_image)

    comps = {step: build(step) for step in factories}

    def configure(task, step: str):
        spec = steps.STEP[step]
        task.set_display_name(spec.display_name)
        task.set_caching_options(enable_caching=caching)
        if retries > 0 and spec.remote_read:
            task.set_retry(num_retries=retries, backoff_duration=retry_backoff, backoff_factor=2.0)
        if resources and step in resources:
            res = resources[step]
            if target == "vertex":
                # Vertex ignores requests: its machine type comes from the limits.
                task.set_cpu_limit(res.cpu_limit or res.cpu_request)
            else:
                task.set_cpu_request(res.cpu_request)
                task.set_memory_request(res.memory_request)
            task.set_memory_limit(res.memory_limit)
        if gpu_config is not None and step in gpu_config.steps:
            task.set_accelerator_type(accelerator)
            task.set_accelerator_limit(gpu_config.count)
        if gpu_config is not None and step in gpu_config.steps and target == "kfp":
            # Vertex places GPU tasks itself and has no Kubernetes platform spec.
            kubernetes.add_node_selector(
                task, label_key=gpu_config.node_label_key, label_value=gpu_config.node_label_value
            )
            kubernetes.add_toleration(
                task, key=gpu_config.toleration_key, operator="Exists", effect="NoSchedule"
            )
        return task

    def train_and_evaluate(features, values):
        trained = configure(
            comps["train"](features=features, **steps.STEP["train"].component_arguments(values)), "train"
        )
        return configure(
            comps["evaluate"](
                model=trained.outputs["model"],
                features=features,
                **steps.STEP["evaluate"].component_arguments(values),
            ),
            "evaluate",
        )

    @dsl.pipeline(name=pipeline_name, description=PIPELINE_DESCRIPTION)
    def disco_pipeline(
        data_uri: str,
        embedder: str = params.DEFAULT_EMBEDDER,
        vggish_handle: str = params.VGGISH_DEFAULT_HANDLE,
        augment_copies: int = params.DEFAULT_AUGMENT_COPIES,
        augment_mixup: int = 0,
        augment_masks: bool = False,
        preset: str = params.DEFAULT_PRESET,
        # The hyperparameters' defaults take the chosen preset's (params.from_preset).
        model: str = params.FROM_PRESET_MODEL,
        epochs: int = params.FROM_PRESET,
        batch_size: int = params.FROM_PRESET,
        learning_rate: float = float(params.FROM_PRESET),
        dropout: float = float(params.FROM_PRESET),
        l2: float = float(params.FROM_PRESET),
        patience: int = params.FROM_PRESET,
        seed: int = params.DEFAULT_SEED,
        validation_fraction: float = params.DEFAULT_VALIDATION_FRACTION,
        use_release_features: bool = False,
        beam_options: str = "",
        data_fingerprint: str = "",
    ) -> str:
        # The parameters, by name, for disco.steps to hand each component its own (the first
        # statement, so locals() holds exactly the pipeline's parameters).
        values = dict(locals())

        def step_args(step: str) -> dict:
            return steps.STEP[step].component_arguments(values)

        # Train and evaluate sit inside each branch: kfp.local 2.17 cannot resolve a dsl.OneOf of
        # artifacts (only of parameters), so the branches join on evaluate's parameter outputs.
        with dsl.If(use_release_features == True, name="release-features"):  # noqa: E712 (KFP condition)
            imported = configure(comps["import_features"](**step_args("import_features")), "import_features")
            from_release = train_and_evaluate(imported.outputs["features"], values)
        with dsl.Else(name="from-audio"):
            resampled = configure(comps["resample"](**step_args("resample")), "resample")
            augmented = configure(
                comps["augment"](resampled=resampled.outputs["resampled"], **step_args("augment")), "augment"
            )
            embedded = configure(
                comps["embed"](
                    resampled=resampled.outputs["resampled"],
                    augmented=augmented.outputs["augmented"],
                    **step_args("embed"),
                ),
                "embed",
            )
            from_audio = train_and_evaluate(embedded.outputs["embeddings"], values)
        return dsl.OneOf(from_release.outputs["evaluation_uri"], from_audio.outputs["evaluation_uri"])

    return disco_pipeline
