"""A small server the preview tests run inside a sandbox (standard library only; the python-3.13
image has no `websockets`): on the port given as its argument,
- a WebSocket echo (any path, with an Upgrade header): text and binary frames come back as sent,
  the first offered subprotocol is chosen, a close is answered with the same code, and the text
  `close:<code>` makes the server close with that code;
- GET /headers: the request line and headers as JSON;
- GET /sse: server-sent events `data: <n>` every 0.2 s, without end;
- POST /echo: the body back;
- GET /hostile: a redirect to /elsewhere with Clear-Site-Data and HSTS; GET /many-headers: 300 headers.
"""

import asyncio
import base64
import hashlib
import json
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return method, target, headers


def header(headers, name):
    return next((value for key, value in headers if key.lower() == name), None)


async def frames(reader, writer):
    while True:
        first, second = await reader.readexactly(2)
        opcode, masked, length = first & 0x0F, second & 0x80, second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        mask = await reader.readexactly(4) if masked else b"\0\0\0\0"
        data = bytearray(await reader.readexactly(length))
        for i in range(length):
            data[i] ^= mask[i % 4]
        if opcode == 9:
            send(writer, 10, bytes(data))
        elif opcode == 8:
            send(writer, 8, bytes(data[:2]) if len(data) >= 2 else b"")
            await writer.drain()
            return
        elif opcode == 1 and data.startswith(b"close:"):  # the app closes, with the code asked for
            send(writer, 8, struct.pack("!H", int(data[6:])) + b"by the app")
            await writer.drain()
            return
        elif opcode in (1, 2):
            send(writer, opcode, bytes(data))
        await writer.drain()


def send(writer, opcode, data):
    length = len(data)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    writer.write(head + data)


async def handle(reader, writer):
    try:
        method, target, headers = await read_head(reader)
        if (header(headers, "upgrade") or "").lower() == "websocket":
            key = header(headers, "sec-websocket-key").encode()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()  # noqa: S324 (the protocol's)
            lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                     f"Sec-WebSocket-Accept: {accept}"]  # fmt: skip
            offered = header(headers, "sec-websocket-protocol")
            if offered:
                lines.append(f"Sec-WebSocket-Protocol: {offered.split(',')[0].strip()}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await frames(reader, writer)
        elif target.startswith("/headers"):
            body = json.dumps({"method": method, "target": target, "headers": headers}).encode()
            cookies = b"Set-Cookie: app=1; Domain=preview.localhost; Path=/\r\nSet-Cookie: sessionid=evil; Path=/\r\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n" + cookies
                         + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        elif target.startswith("/hostile"):
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nClear-Site-Data: \"*\"\r\n"
                         b"Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")  # fmt: skip
        elif target.startswith("/many-headers"):
            many = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(300))
            writer.write(b"HTTP/1.1 200 OK\r\n" + many + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        elif target.startswith("/sse"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         b"Connection: close\r\n\r\n")  # fmt: skip
            n = 0
            while True:
                writer.write(f"data: {n}\n\n".encode())
                await writer.drain()
                n += 1
                await asyncio.sleep(0.2)
        elif method == "POST" and target.startswith("/echo"):
            length = int(header(headers, "content-length") or 0)
            body = await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "0.0.0.0", port)  # noqa: S104
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
