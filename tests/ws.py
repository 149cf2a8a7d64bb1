"""The WebSocket test client every test uses: channels' WebsocketCommunicator with waits meant
for a loaded machine (its own default is 1 s, which three test workers on two cores exceed)."""

from channels.testing import WebsocketCommunicator

WAIT = 30.0  # seconds; a test that expects silence says so with receive_nothing(short)


class Communicator(WebsocketCommunicator):
    async def connect(self, timeout: float = WAIT):
        return await super().connect(timeout)

    async def receive_output(self, timeout: float = WAIT):
        return await super().receive_output(timeout)

    async def receive_from(self, timeout: float = WAIT):
        return await super().receive_from(timeout)

    async def receive_json_from(self, timeout: float = WAIT):
        return await super().receive_json_from(timeout)

    async def disconnect(self, code: int = 1000, timeout: float = WAIT):
        return await super().disconnect(code, timeout)
