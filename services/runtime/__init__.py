"""The small runtime every daemon shares: the daemon declaration and its one runner, settings, JSON logs, health and
metrics, migrations, the deployed topology, graceful shutdown.

A daemon declares itself (`daemon.Daemon`: name, build, migrations, queues) in its `bootstrap`; `runner.Runner`
starts any list of declared daemons in-process, and `serve.serve` runs them as a process with signals and health.
"""
