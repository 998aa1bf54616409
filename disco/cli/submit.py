"""`disco submit` (a KFP endpoint, `kfp run create` semantics) and `disco vertex-submit` (Vertex AI
Pipelines) for the compiled pipeline YAML."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, fields
from typing import Any

from disco import params
from disco.cli import _params
from disco.errors import ConfigError

log = logging.getLogger(__name__)

# The kfp SDK's own variable for the API endpoint (kfp.Client reads it too); `disco submit` reads it
# when the command runs, never at import.
ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"

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


def check_target(package: str, target: str) -> None:
    """Refuse a package compiled for the other backend: KFP cannot schedule Vertex's accelerator
    names, and Vertex rejects the Kubernetes resource name and platform spec (`disco compile --target`)."""
    import yaml

    with open(package, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    executors = (docs[0].get("deploymentSpec") or {}).get("executors") or {}
    kinds = {
        str(((ex.get("container") or {}).get("resources") or {}).get("accelerator", {}).get("resourceType"))
        for ex in executors.values()
    } - {"None"}
    vertex_kinds = kinds & set(params.VERTEX_ACCELERATORS.values())
    # Without GPUs the CPU sizing tells them apart: KFP's package requests CPUs (the scheduler's
    # input), Vertex's sets limits (what it picks a machine from, ignoring requests).
    sized = [((ex.get("container") or {}).get("resources") or {}) for ex in executors.values()]
    cpu_limits = any("resourceCpuLimit" in r for r in sized)
    cpu_requests_only = any("resourceCpuRequest" in r for r in sized) and not cpu_limits
    if target == "kfp" and (vertex_kinds or cpu_limits):
        raise ConfigError(
            f"{package}: compiled for Vertex AI ("
            + (f"accelerator {sorted(vertex_kinds)[0]}" if vertex_kinds else "CPU limits, no requests")
            + "); compile with `disco compile --target kfp` for a KFP endpoint"
        )
    if target == "vertex" and (kinds - vertex_kinds or len(docs) > 1 or cpu_requests_only):
        raise ConfigError(
            f"{package}: compiled for open-source KFP (Kubernetes GPU resource / platform spec); "
            "compile with `disco compile --target vertex` for Vertex AI"
        )


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


@dataclass(frozen=True)
class ClientOptions:
    """What `disco submit` hands kfp.Client: the endpoint and the SDK's usual auth options."""

    host: str | None
    namespace: str | None = None
    existing_token: str | None = None
    sa_token_path: str | None = None
    client_id: str | None = None
    other_client_id: str | None = None
    other_client_secret: str | None = None
    cookies: str | None = None
    proxy: str | None = None
    ssl_ca_cert: str | None = None
    verify_ssl: bool | None = None
    kube_context: str | None = None
    ui_host: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: dict[str, str] | None = None) -> ClientOptions:
        env = os.environ if environ is None else environ
        host = args.endpoint or env.get(ENDPOINT_ENV) or None
        if not host and not args.kube_context:
            raise ConfigError(
                f"no KFP endpoint: pass --endpoint http://host:port or set {ENDPOINT_ENV} "
                "(or --kube-context to reach it through the Kubernetes API proxy)"
            )
        if args.existing_token and args.sa_token_path:
            raise ConfigError("--existing-token and --sa-token-path both given: pass one")
        for flag, path in (("--ssl-ca-cert", args.ssl_ca_cert), ("--sa-token-path", args.sa_token_path)):
            if path and not os.path.isfile(path):
                raise ConfigError(f"{flag} {path}: file not found")
        # The auth options are named as the fields; the endpoint and the TLS switch are not.
        named = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        return cls(**named, host=host, verify_ssl=False if args.insecure_skip_verify else None)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of kfp.Client; options left unset are left out, so the SDK's own
        defaults (and its KF_PIPELINES_* variables) still apply."""
        # The fields are kfp.Client's own keywords, but for the token file (a credentials object).
        kwargs: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "sa_token_path"
        }
        kwargs["namespace"] = self.namespace or None
        if self.sa_token_path:
            from kfp.client import ServiceAccountTokenVolumeCredentials

            kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(path=self.sa_token_path)
        return {k: v for k, v in kwargs.items() if v is not None}


def _common(p: argparse.ArgumentParser, *, package: str) -> None:
    p.add_argument("--package", default=package, help=f"compiled pipeline YAML (default {package})")
    p.add_argument(
        "--data",
        default=None,
        help="dataset URI as the cluster sees it (gs://... ; sets data_uri; default: --param data_uri=...)",
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter (repeatable)"
    )
    p.add_argument("--run-name", default=None, help="run display name (default <pipeline>-<time>)")
    p.add_argument("--no-cache", action="store_true", help="disable execution caching for this run")


# `disco submit --help` ends with these.
EXAMPLES = (
    "disco submit --endpoint http://localhost:8080 --data gs://bucket/openmic-2018 --wait",
    "disco vertex-submit --project P --pipeline-root gs://bucket/root --data gs://bucket/openmic-2018",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit the compiled pipeline to a KFP endpoint",
        description="Create a run on a Kubeflow Pipelines endpoint from the compiled YAML, in an "
        "experiment (created if absent): the same as `kfp run create`.",
    )
    p.add_argument(
        "--endpoint",
        default=None,
        help=f"KFP API host, e.g. http://localhost:8080 (default: ${ENDPOINT_ENV})",
    )
    p.add_argument("--experiment", default="disco", help="experiment name")
    p.add_argument(
        "--namespace", default=None, help="Kubernetes namespace (multi-user KFP; default: the user's own)"
    )
    auth = p.add_argument_group("authentication (kfp.Client's options)")
    auth.add_argument(
        "--existing-token",
        default=None,
        help="bearer token obtained outside disco (e.g. gcloud auth; default: none)",
    )
    auth.add_argument(
        "--sa-token-path",
        default=None,
        help="projected service-account token file (in-cluster multi-user KFP, "
        "/var/run/secrets/kubeflow/pipelines/token; default: none)",
    )
    auth.add_argument(
        "--client-id", default=None, help="IAP OAuth client id (KFP behind Cloud IAP; default: none)"
    )
    auth.add_argument(
        "--other-client-id", default=None, help="OAuth client id of this app (with IAP; default: none)"
    )
    auth.add_argument(
        "--other-client-secret", default=None, help="OAuth client secret of this app (default: none)"
    )
    auth.add_argument(
        "--cookies", default=None, help="cookie header to send (e.g. an Istio/Dex session; default: none)"
    )
    auth.add_argument(
        "--proxy", default=None, help="HTTP proxy to reach the endpoint through (default: none)"
    )
    auth.add_argument(
        "--ssl-ca-cert",
        default=None,
        help="CA bundle that signed the endpoint's certificate (default: the system's)",
    )
    auth.add_argument(
        "--insecure-skip-verify", action="store_true", help="do not verify the endpoint's TLS certificate"
    )
    auth.add_argument(
        "--kube-context",
        default=None,
        help="kubeconfig context (reach KFP through the API server proxy; default: none)",
    )
    auth.add_argument(
        "--ui-host", default=None, help="KFP UI address for the printed run link (default: the endpoint)"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait for the run to finish and exit non-zero on failure"
    )
    p.add_argument("--timeout", type=int, default=3600, help="seconds to wait with --wait")
    _common(p, package=params.PIPELINE_YAML)
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
    v.add_argument(
        "--service-account",
        default=None,
        help="service account the pipeline runs as (default: the project's default)",
    )
    v.add_argument(
        "--experiment", default=None, help="Vertex AI experiment to attach the run to (default: none)"
    )
    v.add_argument("--wait", action="store_true", help="block until the job finishes")
    _common(v, package=params.PIPELINE_YAML_VERTEX)
    v.set_defaults(func=handle_vertex)


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    types = parameter_types(args.package)
    values = parse_parameters(args.param, types, package=args.package)
    if args.data:
        values["data_uri"] = args.data
    if "data_uri" in types and "data_uri" not in values:
        raise ConfigError("data_uri is required: pass --data gs://bucket/path (as the cluster sees it)")
    _params.check_values(values)
    if "data_fingerprint" in types and "data_fingerprint" not in values:
        fingerprint = _data_fingerprint(values["data_uri"])
        if fingerprint:  # unknown: the pipeline's default ("") applies and the key sees the URI only
            values["data_fingerprint"] = fingerprint
    return values


def _data_fingerprint(data_uri: str) -> str:
    """The dataset's content identity for the cluster's cache key (see disco.data.fingerprint); ""
    (the key then sees the URI only) where this machine cannot list the dataset."""
    from disco.data.fingerprint import dataset_fingerprint
    from disco.data.storage import missing_credentials
    from disco.remote import is_remote

    # Without credentials, listing a bucket only waits out Beam's retries (minutes): skip at once.
    reason = missing_credentials() if is_remote(data_uri) else None
    if not reason:
        try:
            return dataset_fingerprint(data_uri)
        except Exception as exc:  # a path only the cluster sees: not a reason to refuse the submit
            reason = str(exc)
    log.warning(
        "%s: cannot fingerprint the dataset from here (%s); the KFP cache will key it by URI only "
        "(pass --param data_fingerprint=... or disable caching when the data changes)",
        data_uri,
        reason,
    )
    return ""


def handle_submit(args: argparse.Namespace) -> int:
    import kfp

    options = ClientOptions.from_args(args)
    values = _parameters(args)
    check_target(args.package, "kfp")
    endpoint = options.host or f"kube context {options.kube_context}"
    try:
        client = kfp.Client(**options.client_kwargs())
        result = client.create_run_from_pipeline_package(
            args.package,
            arguments=values,
            run_name=args.run_name,
            experiment_name=args.experiment,
            namespace=args.namespace,
            enable_caching=not args.no_cache,
        )
    except Exception as exc:  # urllib3/kfp_server_api raise many unrelated types for "not reachable"
        raise ConfigError(
            f"KFP endpoint {endpoint}: run not created ({type(exc).__name__}: {_first_line(exc)}); "
            f"check --endpoint / {ENDPOINT_ENV} and the auth options, or start a local one with "
            "`make kind-up` and `make ui` (port-forward)"
        ) from exc
    link = options.ui_host or options.host or ""
    print(
        f"run {result.run_id} created in experiment {args.experiment!r}: {link}/#/runs/details/{result.run_id}"
    )
    if args.wait:
        run = client.wait_for_run_completion(result.run_id, timeout=args.timeout)
        state = str(getattr(run, "state", "")).upper()
        print(f"run {result.run_id} finished: {state}")
        return 0 if state == "SUCCEEDED" else 1
    return 0


def _first_line(exc: Exception) -> str:
    # urllib3's MaxRetryError repeats the whole URL; its `reason` is the part a user can act on.
    text = str(getattr(exc, "reason", None) or exc).strip()
    return text.splitlines()[0][:200] if text else "no message"


def handle_vertex(args: argparse.Namespace) -> int:
    if not args.pipeline_root.startswith("gs://"):
        raise ConfigError(f"--pipeline-root {args.pipeline_root!r}: Vertex AI needs a gs:// pipeline root")
    if not args.project:
        raise ConfigError("--project is empty (set VERTEX_PROJECT for `make vertex-submit`)")
    values = _parameters(args)
    check_target(args.package, "vertex")
    from disco.extras import require

    aiplatform = require("google.cloud.aiplatform", feature="disco vertex-submit")

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
        try:
            job.wait()
        except RuntimeError as exc:  # aiplatform raises a bare RuntimeError for a failed job
            print(f"disco vertex-submit: job {job.resource_name} failed: {exc}", file=sys.stderr)
            return 1
        print(f"job finished: {job.state}")
        # A cancelled or paused job also ends the wait without an error.
        return 0 if getattr(job.state, "name", str(job.state)).endswith("SUCCEEDED") else 1
    return 0
