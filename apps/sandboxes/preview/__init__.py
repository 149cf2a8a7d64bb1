"""Preview URLs: a server listening in a sandbox reached through VibeBox (issue 25; docs/api.md,
"Preview URLs").

- tokens.py: the signed, expiring preview tokens (sandbox id + port + expiry);
- ports.py: which ports a sandbox listens on (its /proc/net/tcp{,6}, through sandboxd, cached briefly),
  its template's declared ports, the public flags (reads), and the reserved ports;
- links.py: the URLs of both forms;
- services.py: the writes (a port's public flag, audited);
- routing.py: the ASGI app in front of Django that recognises preview requests and admits them;
- proxy.py: the relay itself (HTTP streamed both ways with httpx, WebSockets with `websockets`);
- pages.py: the HTML pages the proxy answers with when it cannot relay.
"""
