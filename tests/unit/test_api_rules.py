"""The API's rules without I/O: the order of roles, why a plugin does not fit, and the HTTP status of each error."""

import pytest

from plugins.registry import load_plugins
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound, Transient
from services.api.auth import PermissionDenied, Unauthenticated
from services.api.errors import described, status_of
from services.api.keys import Role, digest
from services.api.routes_plugins import misfit

pytestmark = pytest.mark.unit


def test_roles_are_ordered_viewer_operator_admin() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR)
    assert Role.ADMIN.allows(Role.VIEWER)
    assert Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.OPERATOR.allows(Role.ADMIN)
    assert not Role.VIEWER.allows(Role.OPERATOR)


def test_a_key_is_kept_as_its_sha256_only() -> None:
    assert digest("strata_abc") == digest("strata_abc") != digest("strata_abd")
    assert "strata_abc" not in digest("strata_abc")


def test_a_plugin_that_does_not_fit_says_why() -> None:
    plugins = load_plugins()
    qcow2fs, fsbackup = plugins.get("qcow2fs"), plugins.get("fsbackup")
    assert misfit(qcow2fs, "primary", "cluster", "kvm") is None
    assert misfit(qcow2fs, "primary", "cluster", "KVM") is None
    assert misfit(qcow2fs, "primary", "zone", "kvm") == "no zone scope (it serves cluster, host)"
    assert misfit(qcow2fs, "primary", "cluster", "vmware") == "not for vmware (it serves kvm)"
    assert misfit(fsbackup, "primary", None, None) == "not primary storage (it is backup, image)"


def test_errors_keep_their_meaning_in_http() -> None:
    assert status_of(InvalidArgument("bad", field="server")) == 422
    assert status_of(NotFound("none")) == 404
    assert status_of(FailedPrecondition("not now")) == 409
    assert status_of(Transient("later")) == 503
    assert status_of(Unauthenticated("who?")) == 401
    assert status_of(PermissionDenied("no")) == 403
    assert described(InvalidArgument("server: not an IP", field="server")) == {
        "class": "InvalidArgument",
        "code": "INVALID_ARGUMENT",
        "message": "server: not an IP",
        "field": "server",
    }
