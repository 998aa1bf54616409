"""The Dataflow / Flink / Spark option builders, checked through Beam's own PipelineOptions parse."""

from __future__ import annotations

import pytest

from disco.beam import runners
from disco.errors import ConfigError

IMAGE = runners.beam_worker_image(
    registry="us-docker.pkg.dev/my-project/disco", tag="0.1.0-abc123def456", gpu=True
)


def _dataflow(**overrides):
    kwargs = dict(
        project="my-project",
        region="us-central1",
        temp_location="gs://my-bucket/tmp",
        sdk_container_image=IMAGE,
    )
    kwargs.update(overrides)
    return runners.dataflow_args(**kwargs)


def test_dataflow_gpu_options_as_beam_sees_them():
    from apache_beam.options.pipeline_options import (
        DebugOptions,
        GoogleCloudOptions,
        SetupOptions,
        StandardOptions,
        WorkerOptions,
    )

    opts = runners.to_pipeline_options(_dataflow(gpu=runners.DataflowGpu(), job_name="disco-embed-1"))
    assert opts.view_as(StandardOptions).runner == "DataflowRunner"
    gcp = opts.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.job_name) == ("my-project", "us-central1", "disco-embed-1")
    assert gcp.temp_location == "gs://my-bucket/tmp"
    assert gcp.staging_location == "gs://my-bucket/tmp/staging"
    assert gcp.dataflow_service_options == [
        "worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver"
    ]
    worker = opts.view_as(WorkerOptions)
    assert worker.sdk_container_image == IMAGE
    assert worker.machine_type == "n1-standard-4"
    assert worker.max_num_workers == 10
    assert opts.view_as(DebugOptions).number_of_worker_harness_threads == 1
    assert opts.view_as(SetupOptions).sdk_location == "container"
    experiments = opts.view_as(DebugOptions).experiments
    assert "use_runner_v2" in experiments
    assert "no_use_multiple_sdk_containers" in experiments


@pytest.mark.parametrize("gpu", [None, runners.DataflowGpu()])
def test_dataflow_workers_run_the_beam_worker_image_on_runner_v2(gpu, repo_root):
    """What a Dataflow worker needs, CPU or GPU: runner v2 (custom containers need it), disco's
    ``beam-worker`` image as the SDK container with nothing staged, and that image built from
    docker/ with Beam's boot entrypoint from the same Beam and Python versions as the launcher."""
    import re
    import sys

    from apache_beam.options.pipeline_options import DebugOptions, SetupOptions, WorkerOptions

    image = runners.beam_worker_image(
        registry="us-docker.pkg.dev/p/disco", tag="0.1.0-abc", gpu=gpu is not None
    )
    opts = runners.to_pipeline_options(_dataflow(sdk_container_image=image, gpu=gpu))
    assert "use_runner_v2" in opts.view_as(DebugOptions).experiments
    assert opts.view_as(WorkerOptions).sdk_container_image == image
    assert image.endswith(f"/disco-beam-worker-{'gpu' if gpu else 'cpu'}:0.1.0-abc")
    assert opts.view_as(SetupOptions).sdk_location == "container"

    dockerfile = (repo_root / "docker" / "Dockerfile").read_text()
    stage = dockerfile.split(f"AS {runners.BEAM_WORKER_TARGET}\n", 1)[1]
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in stage
    assert "COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam" in stage
    sdk = re.search(r"ARG BEAM_SDK_IMAGE=apache/beam_python(\d+\.\d+)_sdk:(\S+)", dockerfile)
    assert sdk, "docker/Dockerfile names no Beam SDK image"
    pinned = re.search(
        r"^apache-beam==(\S+)$", (repo_root / "requirements/constraints.txt").read_text(), re.M
    )
    assert sdk.group(2) == pinned.group(1), "the worker's Beam must be the launcher's"
    assert sdk.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_dataflow_cpu_has_no_accelerator_and_keeps_machine_type():
    from apache_beam.options.pipeline_options import DebugOptions, GoogleCloudOptions, WorkerOptions

    opts = runners.to_pipeline_options(
        _dataflow(machine_type="e2-standard-8", max_num_workers=3, disk_size_gb=50, no_public_ips=True)
    )
    assert not opts.view_as(GoogleCloudOptions).dataflow_service_options
    worker = opts.view_as(WorkerOptions)
    assert (worker.machine_type, worker.max_num_workers, worker.disk_size_gb) == ("e2-standard-8", 3, 50)
    assert worker.use_public_ips is False
    assert opts.view_as(DebugOptions).number_of_worker_harness_threads is None


def test_dataflow_gpu_type_count_and_driver_flag():
    gpu = runners.DataflowGpu(gpu_type="nvidia-l4", count=2, install_driver=False)
    assert gpu.service_option() == "worker_accelerator=type:nvidia-l4;count:2"
    args = _dataflow(gpu=gpu, machine_type="g2-standard-8")
    assert "--machine_type=g2-standard-8" in args


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(temp_location="/tmp/x"), "gs://"),
        (dict(region="us central"), "region"),
        (dict(sdk_container_image="us-docker.pkg.dev/p/disco/disco-cpu"), "no tag"),
        (dict(sdk_container_image="us-docker.pkg.dev/p/disco/disco-cpu:latest"), "latest"),
        (dict(sdk_container_image="localhost/disco/disco-cpu:0.1.0-abc"), "local image"),
        (dict(gpu=runners.DataflowGpu(), machine_type="e2-standard-4"), "n1-"),
        (dict(gpu=runners.DataflowGpu(count=0)), "count"),
        (dict(job_name="Bad_Name"), "job_name"),
        (dict(project=""), "project"),
    ],
)
def test_dataflow_rejects_bad_options(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _dataflow(**overrides)


def test_flink_docker_and_external_environments():
    from apache_beam.options.pipeline_options import FlinkRunnerOptions, PortableOptions, StandardOptions

    opts = runners.to_pipeline_options(
        runners.flink_args(
            flink_master="flink-jobmanager:8081",
            sdk_container_image=IMAGE,
            parallelism=4,
            flink_version="1.19",
        )
    )
    assert opts.view_as(StandardOptions).runner == "FlinkRunner"
    flink = opts.view_as(FlinkRunnerOptions)
    assert (flink.flink_master, flink.parallelism, flink.flink_version) == (
        "flink-jobmanager:8081",
        4,
        "1.19",
    )
    portable = opts.view_as(PortableOptions)
    assert (portable.environment_type, portable.environment_config) == ("DOCKER", IMAGE)

    ext = runners.to_pipeline_options(
        runners.flink_args(
            flink_master="localhost:8081", environment="EXTERNAL", worker_pool_endpoint="localhost:50000"
        )
    ).view_as(PortableOptions)
    assert (ext.environment_type, ext.environment_config) == ("EXTERNAL", "localhost:50000")


def test_spark_and_portable_job_server():
    from apache_beam.options.pipeline_options import PortableOptions, SparkRunnerOptions, StandardOptions

    opts = runners.to_pipeline_options(
        runners.spark_args(spark_master_url="spark://spark-master:7077", sdk_container_image=IMAGE)
    )
    assert opts.view_as(StandardOptions).runner == "SparkRunner"
    assert opts.view_as(SparkRunnerOptions).spark_master_url == "spark://spark-master:7077"
    assert opts.view_as(PortableOptions).environment_config == IMAGE

    portable = runners.to_pipeline_options(
        runners.portable_args(job_endpoint="localhost:8099", environment="LOOPBACK")
    )
    assert portable.view_as(StandardOptions).runner == "PortableRunner"
    assert portable.view_as(PortableOptions).job_endpoint == "localhost:8099"
    assert portable.view_as(PortableOptions).environment_type == "LOOPBACK"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: runners.flink_args(flink_master="x:8081"), "sdk_container_image"),
        (lambda: runners.flink_args(flink_master="x:8081", environment="EXTERNAL"), "worker_pool_endpoint"),
        (lambda: runners.flink_args(flink_master="x:8081", environment="PROCESS"), "environment"),
        (lambda: runners.spark_args(spark_master_url="http://x:7077", sdk_container_image=IMAGE), "spark://"),
        (
            lambda: runners.flink_args(flink_master="x:8081", environment="LOOPBACK", parallelism=0),
            "parallelism",
        ),
    ],
)
def test_portable_rejects_bad_options(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_local_default_is_the_in_memory_runner_never_prism():
    """Beam's DirectRunner tries Prism first (a Go binary fetched from GitHub at run time); with no
    runner named, the steps use the in-memory FnApiRunner directly, and a named runner is kept."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from disco.beam.options import LOCAL_RUNNER, is_local, pipeline_options

    opts = pipeline_options([])
    assert opts.view_as(StandardOptions).runner == LOCAL_RUNNER
    assert opts.view_as(DirectOptions).direct_running_mode == "in_memory"
    assert opts.view_as(DirectOptions).direct_num_workers == 1
    named = pipeline_options(["--runner", "DirectRunner", "--direct_num_workers=2"])
    assert named.view_as(StandardOptions).runner == "DirectRunner"
    assert named.view_as(DirectOptions).direct_num_workers == 2
    assert is_local([]) and is_local(["--runner=DirectRunner"]) and not is_local(["--runner=DataflowRunner"])


def test_dask_runner_options_as_beam_sees_them():
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.dask.dask_runner import DaskOptions

    from disco.beam.options import DASK_RUNNER, is_local, pipeline_options

    opts = runners.to_pipeline_options(runners.dask_args(address="tcp://10.0.0.5:8786", npartitions=8))
    assert opts.view_as(StandardOptions).runner == DASK_RUNNER
    dask = opts.view_as(DaskOptions)
    assert (dask.address, dask.npartitions) == ("tcp://10.0.0.5:8786", 8)
    # The short name the docs use resolves to Beam's class path, in both option spellings.
    for args in (["--runner", "dask"], ["--runner=DaskRunner"]):
        assert pipeline_options(args).view_as(StandardOptions).runner == DASK_RUNNER
        assert not is_local(args)
    with pytest.raises(ConfigError, match="tcp://"):
        runners.dask_args(address="10.0.0.5:8786")


def test_more_local_workers_mean_threads():
    from apache_beam.options.pipeline_options import DirectOptions

    from disco.beam.options import pipeline_options

    for args in (["--direct_num_workers", "2"], ["--direct_num_workers=2"]):
        opts = pipeline_options(args).view_as(DirectOptions)
        assert (opts.direct_num_workers, opts.direct_running_mode) == (2, "multi_threading")
    opts = pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert opts.view_as(DirectOptions).direct_running_mode == "multi_processing"


def test_progress_lines_count_rate_and_time_left(caplog):
    import logging

    from disco.beam.progress import Progress

    p = Progress("embed", total=100, every_s=3600.0)
    with caplog.at_level(logging.INFO, logger="disco.beam.progress"):
        assert p.add(10) is None  # not due yet: at most one line per interval
        p._last -= 7200.0
        line = p.add(15)
        assert line.startswith("embed: 25/100 clips (25 %)") and "/s, about" in line and "left" in line
        assert p.add(75).startswith("embed: 100/100 clips (100 %)")  # the last one always shows
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and messages[0] == line and messages[1].startswith("embed: 100/100")
