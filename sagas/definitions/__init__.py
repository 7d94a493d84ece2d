"""The saga definitions strata runs. Importing a module registers its sagas in `sagas.saga_registry`."""
