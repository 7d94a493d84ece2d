"""A primary plugin for the API's tests whose form has what the seed's flow types: a server address, a user name and
a password (secret), a protocol (an enum), a port (a bounded number). Its data path is qcow2fs's, on a directory.

It is registered in the test stack's registry only (never installed): the API renders its form from its JSON Schema
like any vendor's, and the agent opens it like any plugin.
"""

from enum import StrEnum

from pydantic import Field, SecretStr

from plugins.qcow2fs import MANIFEST as QCOW2FS
from plugins.qcow2fs import Qcow2fsConfig, Qcow2fsDriver
from plugins.sdk import LoadedPlugin, Plugin


class Protocol(StrEnum):
    """How the filer is mounted."""

    NFS = "nfs"
    SMB = "smb"


class NetfsConfig(Qcow2fsConfig):
    """A filer reached with a user and password; its export mounted at `path`."""

    server: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}$", description="The filer's IPv4 address, e.g. 192.0.2.10.")
    username: str = Field(min_length=1, description="The account strata signs in with.")
    password: SecretStr = Field(description="That account's password (never shown again).")
    protocol: Protocol = Field(default=Protocol.NFS, description="How the export is mounted.")
    port: int = Field(default=2049, ge=1, le=65535, description="The filer's port.")


MANIFEST = QCOW2FS.model_copy(
    update={
        "name": "netfs",
        "vendor": "Example Filers",
        "description": "a filer's export, reached with a user and password (test plugin)",
        "config_model": NetfsConfig,
    }
)
LOADED = LoadedPlugin(name="netfs", manifest=MANIFEST, plugin=Plugin(manifest=MANIFEST, factory=Qcow2fsDriver))
