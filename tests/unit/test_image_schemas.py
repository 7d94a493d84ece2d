"""The image domain's messages refuse bad input where it is typed: checksums in CloudStack's form, URLs, formats."""

import uuid

import pytest
from pydantic import ValidationError

from schemas.image import ImageFormat, ImageKind, RegisterImage, parse_checksum

pytestmark = pytest.mark.unit


def register(**fields: object) -> RegisterImage:
    values: dict[str, object] = {
        "image_id": uuid.uuid4(),
        "name": "debian-12",
        "format": ImageFormat.QCOW2,
        "zone_id": uuid.uuid4(),
        "url": "https://images.example/debian-12.qcow2",
    }
    return RegisterImage.model_validate(values | fields)


@pytest.mark.parametrize(
    ("written", "algorithm", "digest"),
    [
        ("{SHA-256}" + "AB" * 32, "sha256", "ab" * 32),
        ("{sha-512}" + "0" * 128, "sha512", "0" * 128),
        ("{SHA-1}" + "1" * 40, "sha1", "1" * 40),
        ("{MD5}" + "2" * 32, "md5", "2" * 32),
        ("3" * 32, "md5", "3" * 32),
    ],
)
def test_cloudstack_checksums_are_read(written: str, algorithm: str, digest: str) -> None:
    assert parse_checksum(written) == (algorithm, digest)


@pytest.mark.parametrize(
    "written",
    ["a" * 64, "{SHA-256}" + "a" * 63, "{SHA-384}" + "a" * 96, "{SHA-256}" + "g" * 64, "sha256:" + "a" * 64, ""],
)
def test_other_checksums_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match="CloudStack's form"):
        parse_checksum(written)
    with pytest.raises(ValidationError):
        register(checksum=written)


@pytest.mark.parametrize(
    "url", ["ftp://host/image.qcow2", "file:///etc/passwd", "https://user:secret@host/image.qcow2", "not a url"]
)
def test_only_plain_http_urls_are_taken(url: str) -> None:
    with pytest.raises(ValidationError):
        register(url=url)


def test_an_iso_has_the_iso_format_and_a_template_not() -> None:
    assert register(kind=ImageKind.ISO, format=ImageFormat.ISO).kind is ImageKind.ISO
    with pytest.raises(ValidationError):
        register(kind=ImageKind.ISO, format=ImageFormat.QCOW2)
    with pytest.raises(ValidationError):
        register(kind=ImageKind.TEMPLATE, format=ImageFormat.ISO)
