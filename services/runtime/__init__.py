"""The small runtime every daemon shares: settings, JSON logs, health and metrics, migrations, graceful shutdown.

A daemon's `bootstrap` reads `RuntimeSettings`, calls `configure_logging`, applies its migrations with
`migrate_service`, serves `HealthServer`, and runs until `GracefulShutdown` says to stop.
"""
