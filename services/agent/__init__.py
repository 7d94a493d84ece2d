"""The host agent: runs plugin operations where the storage is, and drives the host's hypervisor.

`strata run agent --host H --cluster C` consumes the host's queue and the cluster's (competing consumers within a
cluster); `bootstrap` builds it, `handlers` is its handler table.
"""
