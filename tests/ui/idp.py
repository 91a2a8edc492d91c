"""A test OpenID Connect provider on 127.0.0.1, for the Web UI's sign-in (tests/ui/run --auth).

It signs every user in without asking (no login form) and issues, for each login, an ID token
for the UI's client and an access token with a `permissions` claim that temper checks. The
keys are made at start (tests/python/jwt_tokens.py) and served at /jwks.json, which temper
reads with --auth-jwks-url.

    python idp.py --client-id ID --client-secret SECRET --info-out FILE

writes FILE as JSON, once it serves: {"url": ..., "jwks_url": ..., "admin_token": ...}
(admin_token: a token for seeding workflows). The next login's user and permissions are set
with POST /next-user {"sub": ..., "permissions": [...]} (default: "ui-user" with
["default:read"]). It runs until killed.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from jwt_tokens import SigningKey  # noqa: E402

TOKEN_LIFETIME_S = 600


class Provider:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = SigningKey("idp-key")
        self.url = ""
        self.lock = threading.Lock()
        self.next_user: dict[str, Any] = {"sub": "ui-user", "permissions": ["default:read"]}
        # code -> (user, nonce), each used once
        self.codes: dict[str, tuple[dict[str, Any], str]] = {}

    def tokens(self, user: dict[str, Any], nonce: str) -> dict[str, Any]:
        now = int(time.time())
        exp = now + TOKEN_LIFETIME_S
        access = self.key.sign(
            {
                "iss": self.url,
                "sub": user["sub"],
                "permissions": user["permissions"],
                "iat": now,
                "exp": exp,
            }
        )
        id_claims = {
            "iss": self.url,
            "aud": self.client_id,
            "sub": user["sub"],
            "email": f"{user['sub']}@example.com",
            "email_verified": True,
            "name": user["sub"],
            "iat": now,
            "exp": exp,
        }
        if nonce:
            id_claims["nonce"] = nonce
        return {
            "access_token": access,
            "id_token": self.key.sign(id_claims),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
        }


def handler(p: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if body is not None:
                self.send_header("content-type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/.well-known/openid-configuration":
                self.reply(
                    200,
                    {
                        "issuer": p.url,
                        "authorization_endpoint": p.url + "/authorize",
                        "token_endpoint": p.url + "/token",
                        "jwks_uri": p.url + "/jwks.json",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["ES256"],
                        "token_endpoint_auth_methods_supported": [
                            "client_secret_basic",
                            "client_secret_post",
                        ],
                    },
                )
            elif url.path == "/jwks.json":
                self.reply(200, {"keys": [p.key.jwk()]})
            elif url.path == "/authorize":
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if q.get("client_id") != p.client_id or q.get("response_type") != "code":
                    self.reply(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                with p.lock:
                    p.codes[code] = (dict(p.next_user), q.get("nonce", ""))
                back = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
                self.reply(302, None, {"location": back})
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode()
            if url.path == "/next-user":
                user = json.loads(raw)
                with p.lock:
                    p.next_user = {"sub": user["sub"], "permissions": list(user["permissions"])}
                self.reply(200, {})
                return
            if url.path != "/token":
                self.reply(404, {"error": "not_found"})
                return
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
            basic = self.headers.get("authorization", "")
            if basic.startswith("Basic "):
                pair = base64.b64decode(basic[6:]).decode()
                client_id, _, client_secret = pair.partition(":")
            if (client_id, client_secret) != (p.client_id, p.client_secret):
                self.reply(401, {"error": "invalid_client"})
                return
            if form.get("grant_type") != "authorization_code":
                self.reply(400, {"error": "unsupported_grant_type"})
                return
            with p.lock:
                found = p.codes.pop(form.get("code", ""), None)
            if found is None:
                self.reply(400, {"error": "invalid_grant"})
                return
            user, nonce = found
            self.reply(200, p.tokens(user, nonce), {"cache-control": "no-store"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--info-out", required=True)
    args = parser.parse_args()
    p = Provider(args.client_id, args.client_secret)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(p))
    p.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    admin = p.tokens(
        {
            "sub": "seeder",
            "permissions": ["default:admin", "default:write", "default:read", "default:worker"],
        },
        "",
    )["access_token"]
    info = {"url": p.url, "jwks_url": p.url + "/jwks.json", "admin_token": admin}
    tmp = Path(args.info_out + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.rename(args.info_out)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
