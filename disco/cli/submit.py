"""`disco submit` (a KFP endpoint, `kfp run create` semantics) and `disco vertex-submit` (Vertex AI
Pipelines) for the compiled pipeline YAML."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from disco import params
from disco.errors import ConfigError

log = logging.getLogger(__name__)

_COERCE = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
}


def parameter_types(package: str) -> dict[str, str]:
    """``{name: parameterType}`` of the compiled pipeline's run parameters."""
    import yaml

    if not os.path.exists(package):
        raise ConfigError(f"{package}: pipeline package not found (run `make compile` first)")
    with open(package, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    try:
        spec = docs[0]["root"]["inputDefinitions"]["parameters"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ConfigError(f"{package}: not a compiled KFP v2 pipeline (no root.inputDefinitions)") from exc
    return {name: str(body.get("parameterType", "STRING")) for name, body in spec.items()}


def parse_parameters(pairs: list[str], types: dict[str, str], *, package: str) -> dict[str, Any]:
    """``["epochs=5", ...]`` -> typed values, checked against the pipeline's parameters."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE")
        if name not in types:
            raise ConfigError(f"--param {name!r}: {package} has no such parameter; it has {sorted(types)}")
        kind = types[name]
        try:
            if kind == "BOOLEAN":
                lowered = raw.strip().lower()
                if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(raw)
                values[name] = lowered in {"true", "1", "yes"}
            else:
                values[name] = _COERCE.get(kind, str)(raw)
        except ValueError as exc:
            raise ConfigError(f"--param {name}={raw!r}: not a valid {kind}") from exc
    return values


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--package", default=params.PIPELINE_YAML, help="compiled pipeline YAML")
    p.add_argument(
        "--data", default=None, help="dataset URI as the cluster sees it (gs://... ; sets data_uri)"
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter (repeatable)"
    )
    p.add_argument("--run-name", default=None, help="run display name (default <pipeline>-<time>)")
    p.add_argument("--no-cache", action="store_true", help="disable execution caching for this run")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit the compiled pipeline to a KFP endpoint",
        description="Create a run on a Kubeflow Pipelines endpoint from the compiled YAML, in an "
        "experiment (created if absent): the same as `kfp run create`.",
    )
    p.add_argument("--endpoint", required=True, help="KFP API host, e.g. http://localhost:8080")
    p.add_argument("--experiment", default="disco", help="experiment name")
    p.add_argument("--namespace", default=None, help="Kubernetes namespace (multi-user KFP)")
    p.add_argument(
        "--wait", action="store_true", help="wait for the run to finish and exit non-zero on failure"
    )
    p.add_argument("--timeout", type=int, default=3600, help="seconds to wait with --wait")
    _common(p)
    p.set_defaults(func=handle_submit)

    v = subparsers.add_parser(
        "vertex-submit",
        help="submit the compiled pipeline to Vertex AI Pipelines",
        description="Submit the compiled YAML as a Vertex AI PipelineJob (google.cloud.aiplatform). "
        "Needs application-default credentials and a gs:// pipeline root.",
    )
    v.add_argument("--project", required=True, help="Google Cloud project id")
    v.add_argument("--region", default="us-central1", help="Vertex AI region")
    v.add_argument("--pipeline-root", required=True, help="gs:// root for artifacts")
    v.add_argument("--service-account", default=None, help="service account the pipeline runs as")
    v.add_argument("--experiment", default=None, help="Vertex AI experiment to attach the run to")
    v.add_argument("--wait", action="store_true", help="block until the job finishes")
    _common(v)
    v.set_defaults(func=handle_vertex)


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    types = parameter_types(args.package)
    values = parse_parameters(args.param, types, package=args.package)
    if args.data:
        values["data_uri"] = args.data
    if "data_uri" in types and "data_uri" not in values:
        raise ConfigError("data_uri is required: pass --data gs://bucket/path (as the cluster sees it)")
    if "data_fingerprint" in types and "data_fingerprint" not in values:
        values["data_fingerprint"] = _data_fingerprint(values["data_uri"])
    return values


def _data_fingerprint(data_uri: str) -> str:
    """The dataset's content identity for the cluster's cache key (see disco.data.fingerprint); ""
    (the key then sees the URI only) where this machine cannot list the dataset."""
    from disco.data.fingerprint import dataset_fingerprint

    try:
        return dataset_fingerprint(data_uri)
    except Exception as exc:  # no credentials, a path only the cluster sees: not a reason to refuse
        log.warning(
            "%s: cannot fingerprint the dataset from here (%s); the KFP cache will key it by URI only "
            "(pass --param data_fingerprint=... or disable caching when the data changes)",
            data_uri,
            exc,
        )
        return ""


def handle_submit(args: argparse.Namespace) -> int:
    import kfp

    values = _parameters(args)
    try:
        client = kfp.Client(host=args.endpoint, namespace=args.namespace)
    except Exception as exc:  # urllib3/kfp_server_api raise many unrelated types for "not reachable"
        raise ConfigError(
            f"KFP endpoint {args.endpoint} not reachable ({type(exc).__name__}); start it with "
            "`make kind-up` and `make ui` (port-forward), or set KFP_ENDPOINT"
        ) from exc
    result = client.create_run_from_pipeline_package(
        args.package,
        arguments=values,
        run_name=args.run_name,
        experiment_name=args.experiment,
        namespace=args.namespace,
        enable_caching=not args.no_cache,
    )
    print(
        f"run {result.run_id} created in experiment {args.experiment!r}: {args.endpoint}/#/runs/details/{result.run_id}"
    )
    if args.wait:
        run = client.wait_for_run_completion(result.run_id, timeout=args.timeout)
        state = str(getattr(run, "state", "")).upper()
        print(f"run {result.run_id} finished: {state}")
        return 0 if state == "SUCCEEDED" else 1
    return 0


def handle_vertex(args: argparse.Namespace) -> int:
    if not args.pipeline_root.startswith("gs://"):
        raise ConfigError(f"--pipeline-root {args.pipeline_root!r}: Vertex AI needs a gs:// pipeline root")
    if not args.project:
        raise ConfigError("--project is empty (set VERTEX_PROJECT for `make vertex-submit`)")
    values = _parameters(args)
    from google.cloud import aiplatform

    aiplatform.init(project=args.project, location=args.region)
    job = aiplatform.PipelineJob(
        display_name=args.run_name or params.PIPELINE_NAME,
        template_path=args.package,
        pipeline_root=args.pipeline_root,
        parameter_values=values,
        enable_caching=not args.no_cache,
    )
    job.submit(service_account=args.service_account, experiment=args.experiment)
    print(f"Vertex AI pipeline job submitted: {job.resource_name}")
    if args.wait:
        job.wait()
        print(f"job finished: {job.state}")
    return 0
