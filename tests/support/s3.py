"""A real S3-protocol server for the tests: moto's server mode on loopback, spoken to over HTTP.

`s3_server` starts one `ThreadedMotoServer` on 127.0.0.1 per test session; `s3` gives each test
an empty server, an admin client, and `enforce_policy`, which creates an IAM user with a given
policy, switches moto's IAM checks on, and returns that user's keys (the app then reads with
them through the standard credential chain, the environment). Nothing is sent anywhere else:
the instance metadata service is disabled and no AWS config file is read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
import requests

BUCKET = "shop-photos"


def reader_policy(bucket: str, prefix: str) -> dict:
    """The least rights docs/s3.md asks for: list the prefix, read the objects under it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
            },
        ],
    }


ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}],
}


@dataclass
class S3Fixture:
    endpoint: str
    admin: object  # a boto3 S3 client with every right

    def put(self, key: str, body: bytes, bucket: str = BUCKET) -> str:
        self.admin.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"

    def enforce_policy(self, policy: dict, monkeypatch) -> None:
        """Make the app's credentials (the environment's) those of a user with this policy only."""
        iam = _client("iam", self.endpoint)
        admin_keys = _user(iam, "admin", ADMIN_POLICY)
        keys = _user(iam, "shop-reader", policy)
        self.admin = _client("s3", self.endpoint, admin_keys)  # still every right afterwards
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=5)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[1])


def _user(iam, name: str, policy: dict) -> tuple[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _client(service: str, endpoint: str, keys: tuple[str, str] = ("testing", "testing")):
    import boto3

    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
    )


@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path) -> S3Fixture:
    """An empty S3 with the bucket BUCKET; the app's boto3 reads the environment set here."""
    requests.post(f"{s3_server}/moto-api/reset", timeout=5)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for credentials
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    fixture = S3Fixture(s3_server, _client("s3", s3_server))
    fixture.admin.create_bucket(Bucket=BUCKET)
    yield fixture
    requests.post(f"{s3_server}/moto-api/reset-auth", data=b"inf", timeout=5)
