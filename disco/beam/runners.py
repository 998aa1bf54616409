"""Pipeline-option builders for running disco's Beam steps at scale: Dataflow (CPU or GPU workers,
custom container from ``docker/``), and Flink / Spark through Beam's portable runner.

Each builder returns the argv list the steps take as ``beam_args`` (and the CLI passes through), so
``run_embed(..., beam_args=dataflow_args(...))`` and ``disco embed ... -- <args>`` are the same
thing. :func:`to_pipeline_options` parses them with Beam's own ``PipelineOptions``, which is what
the tests check: the options Beam will actually see, not the strings we hoped to write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from disco import params
from disco.errors import ConfigError

# Dataflow's GPU service option, exactly as Dataflow documents it ("type:...;count:N;install-nvidia-driver").
DEFAULT_DATAFLOW_MACHINE = "n1-standard-4"
# T4s attach only to N1 machines on Dataflow (and GKE); L4 needs G2.
_GPU_MACHINE_FAMILIES = {
    "nvidia-tesla-t4": "n1-",
    "nvidia-tesla-v100": "n1-",
    "nvidia-tesla-p100": "n1-",
    "nvidia-l4": "g2-",
    "nvidia-tesla-a100": "a2-",
}
_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
# The docker/Dockerfile target Dataflow and portable-runner workers run: disco's runtime plus Beam's
# SDK harness boot entrypoint (a container without it never starts a worker).
BEAM_WORKER_TARGET = "beam-worker"


def beam_worker_image(*, registry: str, tag: str, gpu: bool = False) -> str:
    """Where the ``beam-worker`` image of one build is pushed: the ``--sdk_container_image``."""
    variant = "gpu" if gpu else "cpu"
    return f"{registry.rstrip('/')}/disco-{BEAM_WORKER_TARGET}-{variant}:{tag}"


@dataclass(frozen=True)
class DataflowGpu:
    gpu_type: str = params.DEFAULT_GPU_TYPE
    count: int = 1
    install_driver: bool = True

    def service_option(self) -> str:
        if self.count < 1:
            raise ConfigError(f"GPU count must be >= 1, got {self.count}")
        if not re.fullmatch(r"nvidia-[a-z0-9-]+", self.gpu_type):
            raise ConfigError(
                f"GPU type {self.gpu_type!r} is not a Dataflow accelerator name (e.g. {params.DEFAULT_GPU_TYPE})"
            )
        parts = [f"type:{self.gpu_type}", f"count:{self.count}"]
        if self.install_driver:
            parts.append("install-nvidia-driver")
        return "worker_accelerator=" + ";".join(parts)


def _require(value: str, name: str) -> str:
    if not value or not str(value).strip():
        raise ConfigError(f"{name} is required")
    return value


def _gcs(value: str, name: str) -> str:
    _require(value, name)
    if not value.startswith("gs://"):
        raise ConfigError(f"{name} must be a gs:// path for Dataflow, got {value!r}")
    return value


def _image(value: str) -> str:
    _require(value, "sdk_container_image")
    tag = value.rsplit("/", 1)[-1]
    if ":" not in tag and "@" not in value:
        raise ConfigError(
            f"sdk_container_image {value!r} has no tag: use the <version>-<git sha> tag disco.images builds"
        )
    if tag.endswith(":latest"):
        raise ConfigError(
            f"sdk_container_image {value!r}: 'latest' is not reproducible; use the <version>-<git sha> tag"
        )
    if value.startswith("localhost/"):
        raise ConfigError(
            f"sdk_container_image {value!r} is a local image; Dataflow workers pull from a registry"
        )
    return value


def dataflow_args(
    *,
    project: str,
    region: str,
    temp_location: str,
    sdk_container_image: str,
    staging_location: str | None = None,
    job_name: str | None = None,
    gpu: DataflowGpu | None = None,
    machine_type: str | None = None,
    max_num_workers: int = 10,
    disk_size_gb: int | None = None,
    service_account_email: str | None = None,
    network: str | None = None,
    subnetwork: str | None = None,
    no_public_ips: bool = False,
) -> list[str]:
    """Beam args for the Dataflow runner with disco's image as the worker container.

    With ``gpu``, each worker gets the accelerator (``dataflow_service_options``), runs a single SDK
    process (one TensorFlow per GPU: several processes would each grab the whole GPU's memory), and
    the machine type defaults to one the GPU attaches to.
    """
    _require(project, "project")
    if not _REGION.match(region or ""):
        raise ConfigError(f"region {region!r} is not a GCP region (e.g. us-central1)")
    if max_num_workers < 1:
        raise ConfigError(f"max_num_workers must be >= 1, got {max_num_workers}")
    args = [
        "--runner=DataflowRunner",
        f"--project={project}",
        f"--region={region}",
        f"--temp_location={_gcs(temp_location, 'temp_location')}",
        f"--staging_location={_gcs(staging_location or temp_location.rstrip('/') + '/staging', 'staging_location')}",
        f"--sdk_container_image={_image(sdk_container_image)}",
        # The image already holds disco and every dependency: stage nothing, install nothing at start-up.
        "--sdk_location=container",
        "--experiments=use_runner_v2",
        f"--max_num_workers={max_num_workers}",
    ]
    if job_name:
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", job_name):
            raise ConfigError(f"job_name {job_name!r}: Dataflow wants [a-z]([-a-z0-9]*[a-z0-9])?")
        args.append(f"--job_name={job_name}")
    if gpu is not None:
        machine = machine_type or DEFAULT_DATAFLOW_MACHINE
        family = _GPU_MACHINE_FAMILIES.get(gpu.gpu_type)
        if family and not machine.startswith(family):
            raise ConfigError(f"GPU {gpu.gpu_type} attaches to {family}* machines on Dataflow, not {machine}")
        args += [
            f"--dataflow_service_options={gpu.service_option()}",
            f"--machine_type={machine}",
            "--experiments=no_use_multiple_sdk_containers",
            "--number_of_worker_harness_threads=1",
        ]
    elif machine_type:
        args.append(f"--machine_type={machine_type}")
    if disk_size_gb is not None:
        args.append(f"--disk_size_gb={int(disk_size_gb)}")
    if service_account_email:
        args.append(f"--service_account_email={service_account_email}")
    if network:
        args.append(f"--network={network}")
    if subnetwork:
        args.append(f"--subnetwork={subnetwork}")
    if no_public_ips:
        args.append("--no_use_public_ips")
    return args


@dataclass(frozen=True)
class WorkerEnvironment:
    """Where a portable runner's workers run disco's code: ``DOCKER`` (each worker starts disco's
    image, ``sdk_container_image``), ``EXTERNAL`` (a worker-pool sidecar from the same image at
    ``worker_pool_endpoint``, the usual choice on Kubernetes where task managers cannot run Docker)
    or ``LOOPBACK`` (local testing only); ``parallelism``: the runner's default parallelism."""

    environment: str = "DOCKER"
    sdk_container_image: str | None = None
    worker_pool_endpoint: str | None = None
    parallelism: int | None = None

    def args(self) -> list[str]:
        if self.environment == "DOCKER":
            image = _image(_require(self.sdk_container_image, "sdk_container_image"))
            env = ["--environment_type=DOCKER", f"--environment_config={image}"]
        elif self.environment == "EXTERNAL":
            endpoint = _require(self.worker_pool_endpoint, "worker_pool_endpoint")
            env = ["--environment_type=EXTERNAL", f"--environment_config={endpoint}"]
        elif self.environment == "LOOPBACK":
            env = ["--environment_type=LOOPBACK"]
        else:
            raise ConfigError(f"environment {self.environment!r}: expected DOCKER, EXTERNAL or LOOPBACK")
        if self.parallelism is not None:
            if self.parallelism < 1:
                raise ConfigError(f"parallelism must be >= 1, got {self.parallelism}")
            env.append(f"--parallelism={self.parallelism}")
        return env


def flink_args(*, flink_master: str, flink_version: str | None = None, **workers) -> list[str]:
    """Beam args for a Flink cluster (``host:port`` of the JobManager's REST endpoint);
    ``workers``: the fields of :class:`WorkerEnvironment`."""
    _require(flink_master, "flink_master")
    args = ["--runner=FlinkRunner", f"--flink_master={flink_master}"]
    if flink_version:
        args.append(f"--flink_version={flink_version}")
    return args + WorkerEnvironment(**workers).args()


def spark_args(*, spark_master_url: str, **workers) -> list[str]:
    """Beam args for a Spark cluster (``spark://host:7077``) via Beam's Spark job server;
    ``workers``: the fields of :class:`WorkerEnvironment`."""
    if not (spark_master_url or "").startswith(("spark://", "local")):
        raise ConfigError(f"spark_master_url {spark_master_url!r}: expected spark://host:port (or local[N])")
    return ["--runner=SparkRunner", f"--spark_master_url={spark_master_url}"] + WorkerEnvironment(
        **workers
    ).args()


def portable_args(*, job_endpoint: str, artifact_endpoint: str | None = None, **workers) -> list[str]:
    """Beam args for any portable job server already running (Flink or Spark job server,
    ``host:8099``); ``workers``: the fields of :class:`WorkerEnvironment`."""
    _require(job_endpoint, "job_endpoint")
    args = ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}"]
    if artifact_endpoint:
        args.append(f"--artifact_endpoint={artifact_endpoint}")
    return args + WorkerEnvironment(**workers).args()


def dask_args(*, address: str, npartitions: int | None = None) -> list[str]:
    """Beam args for a running dask.distributed scheduler (``tcp://host:8786``) through Beam's own
    DaskRunner. Every worker must reach the data and output paths (a shared file system or gs://)."""
    from disco.beam.options import DASK_RUNNER

    if not re.fullmatch(r"(tcp|tls|inproc|ws|wss)://\S+", address or ""):
        raise ConfigError(f"dask address {address!r}: expected tcp://host:port of a dask scheduler")
    args = [f"--runner={DASK_RUNNER}", f"--dask_client_address={address}"]
    if npartitions is not None:
        if npartitions < 1:
            raise ConfigError(f"npartitions must be >= 1, got {npartitions}")
        args.append(f"--dask_npartitions={npartitions}")
    return args


def to_pipeline_options(args: Sequence[str]):
    """Beam's own parse of ``args``: ``PipelineOptions`` (imports apache_beam)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(list(args))
