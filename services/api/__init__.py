"""The API daemon: the HTTP API and the web console, composing the services over the bus."""
