"""/healthz, /readyz and /metrics of `kabar serve` over real HTTP."""

from __future__ import annotations

import asyncio
import json
import shutil

from ruamel.yaml import YAML

from kabar.observe.health import broker_check, run_checks
from kabar.store import Store

from ..support.ops import ops_config, serving
from ..support.project import ROOT, WriteConfig


def test_healthz_and_readyz_answer_while_all_is_well(
    write_config: WriteConfig, database_url: str, store: Store
) -> None:
    config = ops_config(write_config, database_url)
    with serving(config) as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "feed_storage": "ok"}
    assert ready.headers["cache-control"] == "no-store"


def test_readyz_names_the_feed_storage_when_it_is_gone(
    write_config: WriteConfig, database_url: str, store: Store
) -> None:
    config = ops_config(write_config, database_url)
    with serving(config) as client:
        shutil.rmtree(config.resolve("public"))
        ready = client.get("/readyz")
        health = client.get("/healthz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable: feed_storage"
    assert "is not a folder" in body["checks"]["feed_storage"]
    assert body["checks"]["database"] == "ok"
    assert health.status_code == 200  # alive, only not ready


def test_readyz_names_the_database_when_it_cannot_be_reached(
    write_config: WriteConfig,
) -> None:
    from ..support.serving import free_port

    config = ops_config(write_config, f"postgresql://kabar@127.0.0.1:{free_port()}/kabar")
    with serving(config) as client:
        ready = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable: database"
    assert "OperationalError" in ready.json()["checks"]["database"]


def test_the_broker_check_names_a_broker_that_does_not_answer(
    write_config: WriteConfig,
) -> None:
    from ..support.serving import free_port

    config = ops_config(
        write_config, "postgresql://kabar@127.0.0.1:1/kabar",
        engine={"mode": "dramatiq", "broker_url": f"redis://127.0.0.1:{free_port()}/0"},
    )  # fmt: skip
    results = asyncio.run(run_checks({"broker": broker_check(config)}))
    assert results["broker"].startswith("ConnectionError")


def test_metrics_are_served_in_prometheus_text_format(
    write_config: WriteConfig, database_url: str, store: Store
) -> None:
    config = ops_config(write_config, database_url)
    with serving(config) as client:
        client.get("/healthz")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    for name in (
        "kabar_messages_total", "kabar_send_seconds_bucket", "kabar_ingest_articles_total",
        "kabar_feed_build_seconds", "kabar_related_documents", "kabar_scheduler_lag_seconds",
        "kabar_bounces_total", "kabar_complaints_total",
    ):  # fmt: skip
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in text, name


def test_the_shipped_dashboard_and_alert_rules_parse() -> None:
    dashboard = json.loads((ROOT / "contrib" / "grafana-dashboard.json").read_text("utf-8"))
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert expressions and all("kabar_" in expr for expr in expressions)
    rules = YAML(typ="safe").load((ROOT / "contrib" / "prometheus-alerts.yml").read_text("utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"KabarComplaintRate", "KabarBounceRate", "KabarIssueStalled",
            "KabarSchedulerLag"} <= alerts  # fmt: skip


def test_a_bad_webhook_endpoint_is_a_located_config_error(write_config: WriteConfig) -> None:
    from click.testing import CliRunner

    from kabar.cli import cli

    path = write_config(
        webhooks={"endpoints": [{"id": "crm", "url": "ftp://crm.example.id", "secret_env": "X",
                                 "events": ["subscriber.gone"]}]},
        metrics={"port": 70000},
    )  # fmt: skip
    result = CliRunner().invoke(cli, ["-c", str(path), "check"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert any(f"{path}:" in line and "webhooks.endpoints.0.url" in line for line in lines)
    assert any("webhooks.endpoints.0.events.0" in line and "subscriber.created" in line
               for line in lines)  # fmt: skip
    assert any("metrics.port" in line for line in lines)
