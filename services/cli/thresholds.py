"""The capacity threshold flags of `strata pool add` and `strata pool update`: a pool's own thresholds (CloudStack's
per-pool settings), which win over the deployment's."""

from typing import Annotated

import typer

from schemas.storage import PoolThresholds

CapacityOption = Annotated[
    float | None,
    typer.Option(
        help="Used fraction (0-1] past which no new volume is placed on the pool (CloudStack's "
        "pool.storage.capacity.disablethreshold).",
        show_default=False,
    ),
]
AllocatedOption = Annotated[
    float | None,
    typer.Option(
        help="Allocated fraction (0-1] past which no new volume is placed on the pool "
        "(pool.storage.allocated.capacity.disablethreshold).",
        show_default=False,
    ),
]
OverprovisioningOption = Annotated[
    float | None,
    typer.Option(
        help="Virtual bytes allowed per byte of thin-provisioned capacity (storage.overprovisioning.factor).",
        show_default=False,
    ),
]


def thresholds_of(
    current: PoolThresholds | None, capacity: float | None, allocated: float | None, overprovisioning: float | None
) -> PoolThresholds | None:
    """The pool's own thresholds with the flags given over `current` (or CloudStack's defaults); None if no flag."""
    given = {
        "capacity_disable_threshold": capacity,
        "allocated_capacity_disable_threshold": allocated,
        "overprovisioning_factor": overprovisioning,
    }
    if all(value is None for value in given.values()):
        return None
    base = (current or PoolThresholds()).model_dump()
    return PoolThresholds(**{**base, **{key: value for key, value in given.items() if value is not None}})
