"""Token auth as Docker/OCI clients expect it (registry.md §2): 401 Bearer challenges, the `/token`
endpoint, HMAC-signed expiring tokens with `repository:NAME:actions` scopes, anonymous pull, and salted
scrypt password hashes in a users file (`user:scrypt$n$r$p$salthex$hashhex` per line).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import AuthMode, AuthSpec
from .errors import RegistryConfigError, RegistryError

PULL = "pull"
PUSH = "push"
USER_ACTIONS = frozenset({"pull", "push", "delete", "*"})
ANON_ACTIONS = frozenset({"pull"})
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1


# ---------------------------------------------------------------- password hashes and users file


def hash_password(password: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(key) // 2, maxmem=256 << 20)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got.hex(), key)


def load_users(path: str | Path) -> dict[str, str]:
    """user -> encoded hash. Raises RegistryConfigError naming the line for malformed files."""
    users: dict[str, str] = {}
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise RegistryConfigError(f"cannot read users file {path}: {e.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not user or not encoded.startswith("scrypt$") or encoded.count("$") != 5:
            raise RegistryConfigError(f"users file {path} line {lineno}: expected user:scrypt$n$r$p$salt$hash"
            )
        users[user] = encoded
    return users


def add_user(path: str | Path, user: str, password: str) -> None:
    """Add or replace `user` in a users file (created if missing)."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise RegistryConfigError(f"user name {user!r} must be non-empty without ':' or spaces")
    p = Path(path)
    users = load_users(p) if p.exists() else {}
    users[user] = hash_password(password)
    p.write_text("".join(f"{u}:{h}\n" for u, h in users.items()))


# ---------------------------------------------------------------- scopes and tokens


@dataclass(frozen=True)
class Scope:
    repo: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"repository:{self.repo}:{','.join(sorted(self.actions))}"


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """`repository:NAME:a,b` items (repeated or space-separated); NAME may contain '/'."""
    out = []
    for value in values:
        for item in value.split():
            typ, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if typ != "repository" or not name:
                continue
            out.append(Scope(name, frozenset(a for a in actions.split(",") if a)))
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authority:
    """Checks credentials, issues tokens and authorizes requests for one registry."""

    def __init__(self, spec: AuthSpec) -> None:
        self.spec = spec
        self.enabled = spec.mode is AuthMode.TOKEN
        self.secret = spec.secret or secrets.token_bytes(32)
        self.users = load_users(spec.users_file) if spec.users_file else {}
        self._verified: set[tuple[str, str]] = set()  # (user, sha256(password)) already checked

    # ---------------------------------------------------------------- token endpoint
    def check_basic(self, header: str | None) -> str | None:
        """The user named by valid Basic credentials, None when there are none; RegistryError if wrong."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise self._denied_credentials() from None
        encoded = self.users.get(user)
        key = (user, hashlib.sha256(password.encode()).hexdigest())
        if encoded is None or (key not in self._verified and not verify_password(password, encoded)):
            raise self._denied_credentials()
        self._verified.add(key)
        return user

    def _denied_credentials(self) -> RegistryError:
        return RegistryError("UNAUTHORIZED", "invalid username/password",
                             headers={"WWW-Authenticate": 'Basic realm="lazylab-registry"'})

    def issue(self, user: str | None, scopes: list[Scope]) -> dict[str, object]:
        allowed = USER_ACTIONS if user else (ANON_ACTIONS if self.spec.allow_anonymous_pull else frozenset())
        access = []
        for s in scopes:
            granted = sorted(s.actions & allowed)
            access.append({"type": "repository", "name": s.repo, "actions": granted})
        now = time.time()
        payload = {"sub": user or "", "access": access, "iat": int(now), "exp": now + self.spec.token_ttl_s}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        token = body + "." + _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())
        return {
            "token": token, "access_token": token, "expires_in": int(self.spec.token_ttl_s),
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        }

    # ---------------------------------------------------------------- resource requests
    def _verify(self, header: str | None) -> dict[str, object] | None:
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        body, _, sig = token.strip().partition(".")
        try:
            want = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, _unb64(sig)):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(payload, dict) or float(payload.get("exp", 0)) < time.time():
            return None
        return payload

    def granted(self, header: str | None, repo: str) -> frozenset[str] | None:
        """Actions a valid token grants on `repo` (None when the token is missing/invalid/expired)."""
        payload = self._verify(header)
        if payload is None:
            return None
        actions: set[str] = set()
        access = payload.get("access", [])
        for a in access if isinstance(access, list) else []:
            if isinstance(a, dict) and a.get("name") == repo:
                actions |= set(a.get("actions", []))
        return frozenset(actions)

    def challenge(self, realm: str, scope: str | None, error: str | None = None) -> str:
        parts = [f'realm="{realm}"', f'service="{self.spec.service}"']
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    def authorize(self, header: str | None, realm: str, repo: str | None, needed: frozenset[str]) -> None:
        """Raise 401 (challenge or insufficient_scope) unless the request's token allows `needed` on `repo`.

        `needed` holds alternatives: any one of them suffices. repo None: only a valid token is needed (/v2/).
        """
        if not self.enabled:
            return
        scope = f"repository:{repo}:{'pull,push' if needed - {PULL} else 'pull'}" if repo else None
        payload = self._verify(header)
        if payload is None:
            raise RegistryError("UNAUTHORIZED", "authentication required",
                                headers={"WWW-Authenticate": self.challenge(realm, scope)})
        if repo is None:
            return
        granted = self.granted(header, repo) or frozenset()
        if not (granted & needed or "*" in granted):
            raise RegistryError(
                "UNAUTHORIZED", "insufficient scope",
                detail=[{"Type": "repository", "Name": repo, "Action": a} for a in sorted(needed)],
                headers={"WWW-Authenticate": self.challenge(realm, scope, "insufficient_scope")},
            )

    # ---------------------------------------------------------------- signed redirect URLs
    def sign_blob_url(self, digest: str, ttl_s: float = 600.0) -> str:
        """Query string that lets the unauthenticated /_blobs/<digest> target serve this blob for a while."""
        exp = int(time.time() + ttl_s)
        sig = _b64(hmac.new(self.secret, f"{digest}|{exp}".encode(), hashlib.sha256).digest())
        return f"exp={exp}&sig={sig}"

    def check_blob_url(self, digest: str, exp: str | None, sig: str | None) -> bool:
        if not self.enabled:
            return True
        if not exp or not sig or not exp.isdigit() or int(exp) < time.time():
            return False
        want = _b64(hmac.new(self.secret, f"{digest}|{exp}".encode(), hashlib.sha256).digest())
        return hmac.compare_digest(want, sig)
