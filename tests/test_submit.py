"""`disco submit`: the endpoint from KF_PIPELINES_ENDPOINT, kfp.Client's auth options, and a real run
creation through the kfp SDK against a tiny KFP API server on 127.0.0.1 that the test starts."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from disco import params
from disco.cli import main
from disco.cli.submit import ENDPOINT_ENV, ClientOptions
from disco.errors import ConfigError


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict = field(default_factory=dict)


class _FakeKfpApi(BaseHTTPRequestHandler):
    """The KFP v2beta1 calls `create_run_from_pipeline_package` makes: find or create the
    experiment, create the run. Every request is recorded for the test to read."""

    seen: list[Seen] = []

    def _reply(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Seen:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = Seen(self.command, self.path, headers, json.loads(raw) if raw else {})
        type(self).seen.append(seen)
        return seen

    def do_GET(self) -> None:
        seen = self._record()
        if seen.path.startswith("/apis/v2beta1/healthz"):
            self._reply({"multi_user": False})
        else:  # experiment lookup by name: none yet
            self._reply({"experiments": [], "total_size": 0})

    def do_POST(self) -> None:
        seen = self._record()
        if seen.path.startswith("/apis/v2beta1/experiments"):
            self._reply({"experiment_id": "exp-1", "display_name": seen.body.get("display_name")})
        elif seen.path.startswith("/apis/v2beta1/runs"):
            self._reply({"run_id": "run-42", "display_name": seen.body.get("display_name")})
        else:
            self.send_error(404)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(autouse=True)
def no_google_cloud(monkeypatch, tmp_path):
    """No credentials and no emulator, whatever the environment (or an earlier test) left: `disco
    submit` fingerprints a gs:// dataset when it believes it can list it, and these tests submit
    `gs://` URIs that exist nowhere."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))  # no application-default file


@pytest.fixture
def kfp_api() -> Iterator[tuple[str, list[Seen]]]:
    _FakeKfpApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfpApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _FakeKfpApi.seen
    finally:
        server.shutdown()
        server.server_close()


def _args(*extra: str):
    from disco.cli import build_parser

    return build_parser().parse_args(["submit", *extra])


def test_endpoint_defaults_to_the_sdk_variable_and_the_error_names_it():
    opts = ClientOptions.from_args(_args(), environ={ENDPOINT_ENV: "http://kfp.example:8888"})
    assert opts.client_kwargs() == {"host": "http://kfp.example:8888"}
    # An explicit --endpoint wins over the variable.
    assert ClientOptions.from_args(
        _args("--endpoint", "http://a:1"), environ={ENDPOINT_ENV: "http://b:2"}
    ).host == ("http://a:1")
    with pytest.raises(ConfigError, match=ENDPOINT_ENV):
        ClientOptions.from_args(_args(), environ={})


def test_auth_options_become_kfp_client_arguments(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    token = tmp_path / "token"
    token.write_text("t")
    kwargs = ClientOptions.from_args(
        _args(
            "--endpoint",
            "https://kfp.example",
            "--namespace",
            "team-a",
            "--ssl-ca-cert",
            str(ca),
            "--insecure-skip-verify",
            "--proxy",
            "http://proxy:3128",
            "--cookies",
            "authservice_session=x",
            "--ui-host",
            "https://ui.example",
            "--sa-token-path",
            str(token),
        ),
        environ={},
    ).client_kwargs()
    credentials = kwargs.pop("credentials")
    assert type(credentials).__name__ == "ServiceAccountTokenVolumeCredentials"
    assert kwargs == {
        "host": "https://kfp.example",
        "namespace": "team-a",
        "ssl_ca_cert": str(ca),
        "verify_ssl": False,
        "proxy": "http://proxy:3128",
        "cookies": "authservice_session=x",
        "ui_host": "https://ui.example",
    }
    import inspect

    import kfp

    accepted = set(inspect.signature(kfp.Client.__init__).parameters)
    assert set(kwargs) | {"credentials"} <= accepted
    with pytest.raises(ConfigError, match="--ssl-ca-cert"):
        ClientOptions.from_args(
            _args("--endpoint", "http://a", "--ssl-ca-cert", str(tmp_path / "no")), environ={}
        )


def test_submit_creates_a_run_with_the_token_and_typed_parameters(kfp_api, monkeypatch, repo_root, capsys):
    endpoint, seen = kfp_api
    monkeypatch.setenv(ENDPOINT_ENV, endpoint)
    rc = main(
        [
            "submit",
            "--package",
            str(repo_root / params.PIPELINE_YAML),
            "--data",
            "gs://bucket/openmic",
            "--param",
            "epochs=3",
            "--existing-token",
            "tok-123",
            "--namespace",
            "team-a",
        ]
    )
    assert rc == 0
    assert "run-42" in capsys.readouterr().out
    runs = [s for s in seen if s.method == "POST" and s.path.startswith("/apis/v2beta1/runs")]
    assert len(runs) == 1
    body = runs[0].body
    assert body["runtime_config"]["parameters"] == {"data_uri": "gs://bucket/openmic", "epochs": 3}
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == params.PIPELINE_NAME
    assert body["experiment_id"] == "exp-1"
    assert len(seen) >= 3 and all(s.headers.get("authorization") == "Bearer tok-123" for s in seen)


@pytest.mark.parametrize(
    "param, reason",
    [
        ("epochs=0", "epochs: 0 must be a positive integer"),
        ("patience=0", "patience: 0 must be a positive integer"),
        ("validation_fraction=1.5", "validation_fraction: 1.5 must be"),
        ("model=bogus", "model='bogus': choose one of"),
        ("preset=nope", "preset='nope': choose one of"),
    ],
)
def test_submit_refuses_a_bad_value_before_submitting(kfp_api, monkeypatch, repo_root, capsys, param, reason):
    """What ``disco run`` refuses before it starts, ``disco submit`` refuses before submitting, not
    the cluster's train step after the embedding."""
    endpoint, seen = kfp_api
    monkeypatch.setenv(ENDPOINT_ENV, endpoint)
    args = ["submit", "--package", str(repo_root / params.PIPELINE_YAML), "--data", "gs://bucket/openmic"]
    rc = main([*args, "--param", param, "--existing-token", "tok-123"])
    assert rc == 2 and reason in capsys.readouterr().err
    assert not [s for s in seen if s.method == "POST" and s.path.startswith("/apis/v2beta1/runs")]


def test_a_dataset_that_cannot_be_listed_is_submitted_without_a_fingerprint(
    kfp_api, monkeypatch, repo_root, caplog
):
    import socket

    endpoint, seen = kfp_api
    # What an earlier test once left behind: an emulator address whose server has stopped. The
    # listing fails within its deadline; the run is still created, keyed by the URI alone.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.setattr(params, "GCS_LIST_DEADLINE_S", 1.0)
    rc = main(
        [
            "submit",
            "--endpoint",
            endpoint,
            "--package",
            str(repo_root / params.PIPELINE_YAML),
            "--data",
            "gs://b/d",
        ]
    )
    assert rc == 0
    (run,) = [s for s in seen if s.method == "POST" and s.path.startswith("/apis/v2beta1/runs")]
    assert "data_fingerprint" not in run.body["runtime_config"]["parameters"]
    assert "gs://b/d: cannot fingerprint the dataset from here" in caplog.text
    assert "cannot list" in caplog.text


def test_a_package_for_the_other_backend_is_refused(tmp_path, repo_root):
    from disco.cli.submit import check_target
    from disco_pipelines.compile import compile_pipeline

    vertex = compile_pipeline(tmp_path / "v.yaml", target="vertex", gpu=True)
    kfp_gpu = compile_pipeline(tmp_path / "k.yaml", target="kfp", gpu=True)
    check_target(str(vertex), "vertex")
    check_target(str(kfp_gpu), "kfp")
    with pytest.raises(ConfigError, match="--target kfp"):
        check_target(str(vertex), "kfp")
    with pytest.raises(ConfigError, match="--target vertex"):
        check_target(str(kfp_gpu), "vertex")
    # CPU-only packages too (the checked-in ones): told apart by their CPU requests / limits.
    check_target(str(repo_root / "pipelines/disco-openmic.yaml"), "kfp")
    check_target(str(repo_root / "pipelines/disco-openmic-vertex.yaml"), "vertex")
    with pytest.raises(ConfigError, match="CPU limits, no requests.*--target kfp"):
        check_target(str(repo_root / "pipelines/disco-openmic-vertex.yaml"), "kfp")
    with pytest.raises(ConfigError, match="--target vertex"):
        check_target(str(repo_root / "pipelines/disco-openmic.yaml"), "vertex")


def test_an_unreachable_endpoint_is_one_config_error(repo_root, unused_port):
    with pytest.raises(ConfigError, match=f"127.0.0.1:{unused_port}.*{ENDPOINT_ENV}"):
        from disco.cli.submit import handle_submit

        handle_submit(
            _args(
                "--endpoint",
                f"http://127.0.0.1:{unused_port}",
                "--namespace",
                "x",
                "--package",
                str(repo_root / params.PIPELINE_YAML),
                "--data",
                "gs://b/d",
            )
        )


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_each_submit_command_defaults_to_its_targets_package():
    from disco.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["submit"]).package == params.PIPELINE_YAML
    vertex = parser.parse_args(["vertex-submit", "--project", "p", "--pipeline-root", "gs://b/r"])
    assert vertex.package == params.PIPELINE_YAML_VERTEX


def test_vertex_submit_without_the_cluster_extra_names_it(monkeypatch, repo_root):
    from disco.cli.submit import handle_vertex
    from disco.errors import MissingExtraError

    # A runtime-only install: the import of the Vertex SDK fails as it would there.
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)
    args = _args_for(
        "vertex-submit",
        "--project",
        "p",
        "--pipeline-root",
        "gs://b/root",
        "--package",
        str(repo_root / params.PIPELINE_YAML_VERTEX),
        "--data",
        "gs://b/d",
    )
    with pytest.raises(MissingExtraError, match=r"disco\[cluster\]"):
        handle_vertex(args)


def _args_for(*argv: str):
    from disco.cli import build_parser

    return build_parser().parse_args(list(argv))
