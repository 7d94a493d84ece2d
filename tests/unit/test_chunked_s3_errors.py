"""How the S3 blob store translates botocore's errors: each S3 reply code to the CSI class with its retry meaning."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from plugins.chunked.s3 import S3BlobStore
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound, StrataError, Transient

pytestmark = pytest.mark.unit

SECRET = "wJalrXUtnFEMI-never-in-a-message"


def _store() -> S3BlobStore:
    return S3BlobStore(
        endpoint_url="http://s3.example:8333", region="us-east-1", bucket="backups", access_key="AK", secret_key=SECRET
    )


def _reply(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "as S3 says it"},
            "ResponseMetadata": {
                "RequestId": "r",
                "HostId": "h",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "PutObject",
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_reply("NoSuchKey", 404), NotFound),
        (_reply("404", 404), NotFound),
        (_reply("NoSuchBucket", 404), FailedPrecondition),
        (_reply("AccessDenied", 403), FailedPrecondition),
        (_reply("SignatureDoesNotMatch", 403), FailedPrecondition),
        (_reply("SlowDown", 503), Transient),
        (_reply("InternalError", 500), Transient),
        (_reply("SomethingNew", 502), Transient),
        (_reply("InvalidRequest", 400), FailedPrecondition),
        (EndpointConnectionError(endpoint_url="http://s3.example:8333"), Transient),
        (ReadTimeoutError(endpoint_url="http://s3.example:8333"), Transient),
        (ConnectionResetError("reset by peer"), Transient),
        (NoCredentialsError(), InvalidArgument),
    ],
)
def test_each_error_becomes_its_csi_class_without_the_secret(error: Exception, expected: type[StrataError]) -> None:
    translated = _store()._translate(error, "writing chunks/abc/abcd")
    assert type(translated) is expected
    assert translated.retryable == (expected is Transient)
    assert "bucket backups" in translated.message
    assert SECRET not in translated.message
    assert SECRET not in repr(_store())
