"""A TCP proxy in front of a real server (RabbitMQ, PostgreSQL): `cut()` is an outage, `restore()` its end."""

import asyncio
import contextlib


class Proxy:
    """Forwards a local port to a server; `cut()` drops every link and refuses new ones until `restore()`;
    `stall()` keeps the links up but holds what the server sends (a broker's confirms) until `flow()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None, "the proxy is cut already"
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()
        for writer in list(self._links):
            writer.close()

    async def restore_if_cut(self) -> None:
        """End an outage a test left behind (its clean-up needs the server)."""
        if self._server is None:
            await self.restore()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._links.update((writer, upstream_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, from_server: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if from_server:
                        await self._flowing.wait()
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(
            pump(reader, upstream_writer, from_server=False), pump(upstream_reader, writer, from_server=True)
        )
