"""The relays' webhooks over HTTP: SES through SNS (signed with a certificate generated
here and served from 127.0.0.1, since AWS is out of reach), Mailgun, Postmark and the
generic HMAC endpoint. A bad signature gets a 4xx and changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette

from kabar.config import Config
from kabar.inbound.webhooks import SNS_CERT_URL, SnsPolicy, sns_string_to_sign
from kabar.store import Store
from kabar.web.inbound import routes

from ..support.asgi import AsgiClient
from ..support.delivery_setup import SECRET, prepare_store, send_now
from ..support.inbound import deliveries_by_address, inbound_config, status_of
from ..support.project import WriteConfig

WEBHOOKS = {
    "ses": True,
    "mailgun_key_env": "KABAR_MAILGUN_KEY",
    "postmark_password_env": "KABAR_POSTMARK_PASSWORD",
    "generic_secret_env": "KABAR_WEBHOOK_SECRET",
}


class CertificateServer:
    """A plain HTTP server on 127.0.0.1 holding the signing certificate, and counting
    the subscription confirmations it is sent."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        self.key = key
        self.pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.confirmed: list[str] = []
        self.fetched: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetched.append(self.path)
                if self.path.startswith("/confirm"):
                    outer.confirmed.append(self.path)
                body = outer.pem if self.path.endswith(".pem") else b"<ok/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def policy(self) -> SnsPolicy:
        origin = re.escape(self.base)
        return SnsPolicy(
            cert_url=re.compile(origin + r"/[A-Za-z0-9/-]+\.pem"),
            confirm_url=re.compile(origin + r"/confirm\?[^\s#]+"),
        )

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303
        message = {**message, "SignatureVersion": version}
        message.setdefault("SigningCertURL", f"{self.base}/SimpleNotificationService-x.pem")
        signature = self.key.sign(sns_string_to_sign(message), padding.PKCS1v15(), algorithm)
        return {**message, "Signature": base64.b64encode(signature).decode()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sns() -> Iterator[CertificateServer]:
    server = CertificateServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def setup(
    write_config: WriteConfig,
    database_url: str,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    sns: CertificateServer,
) -> tuple[Config, Store, AsgiClient, dict[str, tuple[int, str, str, str]]]:
    for name, value in {
        "KABAR_SECRET": SECRET, "KABAR_MAILGUN_KEY": "kunci-mailgun",
        "KABAR_POSTMARK_PASSWORD": "sandi-postmark", "KABAR_WEBHOOK_SECRET": "rahasia-webhook",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    config = inbound_config(write_config, database_url=database_url, webhooks=WEBHOOKS)
    prepare_store(config, store, 6)
    assert send_now(config, store) is not None
    app = Starlette(routes=routes(config, store, sns=sns.policy()))
    return config, store, AsgiClient(app, origin=False), deliveries_by_address(store)


Setup = tuple[Config, Store, AsgiClient, dict[str, tuple[int, str, str, str]]]


def ses_bounce(source: str, address: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    notification = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type, "bounceSubType": "General", "feedbackId": f"fb-{address}",
            "bouncedRecipients": [
                {"emailAddress": address, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
            ],
        },
        "mail": {"messageId": "ses-1", "source": source},
    }  # fmt: skip
    return {
        "Type": "Notification", "MessageId": "sns-1", "Timestamp": "2026-12-05T08:00:00.000Z",
        "TopicArn": "arn:aws:sns:ap-southeast-1:123456789012:kabar-bounces",
        "Message": json.dumps(notification),
    }  # fmt: skip


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_ses_bounce_marks_the_subscriber(
    setup: Setup, sns: CertificateServer, version: str
) -> None:
    _, store, client, by_address = setup
    address = "pembaca000@example.com"
    message = sns.sign(ses_bounce(by_address[address][2], address), version)
    response = client.post("/webhooks/ses", content=json.dumps(message))
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": {"hard": 1}}
    assert status_of(store, address) == "bounced"
    again = client.post("/webhooks/ses", content=json.dumps(message))  # SNS retries
    assert again.status_code == 200 and status_of(store, address) == "bounced"


def test_a_tampered_or_foreign_sns_message_changes_nothing(
    setup: Setup, sns: CertificateServer
) -> None:
    _, store, client, by_address = setup
    address = "pembaca001@example.com"
    signed = sns.sign(ses_bounce(by_address[address][2], address))
    other = ses_bounce(by_address["pembaca002@example.com"][2], "pembaca002@example.com")
    tampered = {**signed, "Message": other["Message"]}
    assert client.post("/webhooks/ses", content=json.dumps(tampered)).status_code == 403
    elsewhere = sns.sign(
        {**ses_bounce(by_address[address][2], address),
         "SigningCertURL": "https://evil.example.net/SimpleNotificationService-x.pem"}
    )  # fmt: skip
    fetched = list(sns.fetched)
    assert client.post("/webhooks/ses", content=json.dumps(elsewhere)).status_code == 403
    assert sns.fetched == fetched  # the foreign URL was never fetched
    assert client.post("/webhooks/ses", content=b"not json").status_code == 400
    assert [status_of(store, a) for a in (address, "pembaca002@example.com")] == ["active"] * 2


def test_the_default_policy_accepts_only_sns_hosts() -> None:
    assert SNS_CERT_URL.fullmatch(
        "https://sns.ap-southeast-1.amazonaws.com/SimpleNotificationService-abc.pem"
    )
    for url in (
        "http://sns.ap-southeast-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.ap-southeast-1.amazonaws.com.evil.net/x.pem",
        "https://evil.net/sns.ap-southeast-1.amazonaws.com/x.pem",
        "http://127.0.0.1:8000/x.pem",
    ):
        assert not SNS_CERT_URL.fullmatch(url), url


def test_an_sns_subscription_is_confirmed(setup: Setup, sns: CertificateServer) -> None:
    _, _, client, _ = setup
    message = sns.sign({
        "Type": "SubscriptionConfirmation", "MessageId": "sns-2", "Token": "t0k3n",
        "TopicArn": "arn:aws:sns:ap-southeast-1:123456789012:kabar-bounces",
        "Message": "You have chosen to subscribe.", "Timestamp": "2026-12-05T08:00:00.000Z",
        "SubscribeURL": f"{sns.base}/confirm?Action=ConfirmSubscription&Token=t0k3n",
    })  # fmt: skip
    response = client.post("/webhooks/ses", content=json.dumps(message))
    assert response.status_code == 200, response.text
    assert sns.confirmed == ["/confirm?Action=ConfirmSubscription&Token=t0k3n"]


def test_mailgun_complaint_needs_its_signature(setup: Setup) -> None:
    _, store, client, by_address = setup
    address = "pembaca003@example.com"
    timestamp, token = "1764921600", "f" * 50
    signature = hmac.new(b"kunci-mailgun", f"{timestamp}{token}".encode(), hashlib.sha256)
    event: dict[str, Any] = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": {
            "id": "mg-1", "event": "complained", "recipient": address,
            "envelope": {"sender": by_address[address][2]},
            "message": {"headers": {"message-id": by_address[address][3].strip("<>")}},
        },
    }  # fmt: skip
    forged = {**event, "signature": {**event["signature"], "signature": "0" * 64}}
    assert client.post("/webhooks/mailgun", json=forged).status_code == 403
    assert status_of(store, address) == "active"
    response = client.post("/webhooks/mailgun", json=event)
    assert response.status_code == 200 and response.json() == {"recorded": {"complaint": 1}}
    assert status_of(store, address) == "complained"


def test_postmark_needs_its_password(setup: Setup) -> None:
    _, store, client, _ = setup
    address = "pembaca004@example.com"
    record = {"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "Email": address,
              "Description": "The server was unable to deliver your message"}  # fmt: skip
    wrong = client.post("/webhooks/postmark", json=record, auth=("kabar", "salah"))
    assert wrong.status_code == 401 and status_of(store, address) == "active"
    assert client.post("/webhooks/postmark", json=record).status_code == 401
    right = client.post("/webhooks/postmark", json=record, auth=("kabar", "sandi-postmark"))
    assert right.status_code == 200 and status_of(store, address) == "bounced"


def test_the_generic_endpoint_checks_the_body_signature(setup: Setup) -> None:
    _, store, client, by_address = setup
    address = "pembaca005@example.com"
    body = json.dumps({"id": "relay-7", "type": "unsubscribe", "email": address,
                       "message_id": by_address[address][3]}).encode()  # fmt: skip
    good = "sha256=" + hmac.new(b"rahasia-webhook", body, hashlib.sha256).hexdigest()
    bad = client.post("/webhooks/bounce", content=body, headers={"X-Kabar-Signature": "sha256=00"})
    assert bad.status_code == 403 and status_of(store, address) == "active"
    ok = client.post("/webhooks/bounce", content=body, headers={"X-Kabar-Signature": good})
    assert ok.status_code == 200 and status_of(store, address) == "unsubscribed"
    big = b"x" * 1_000_001
    assert client.post("/webhooks/bounce", content=big).status_code == 413


def test_unconfigured_relays_have_no_route(
    write_config: WriteConfig, database_url: str, store: Store
) -> None:
    config = inbound_config(write_config, database_url=database_url)
    client = AsgiClient(Starlette(routes=routes(config, store)), origin=False)
    for path in ("/webhooks/ses", "/webhooks/mailgun", "/webhooks/postmark", "/webhooks/bounce"):
        assert client.post(path, content=b"{}").status_code == 404
