"""A registry the way a private one is run: TLS with a certificate from a CA made at test time,
and either htpasswd (Basic) auth or token auth backed by a small token server.

- TestCA: a CA key and certificate, and certificates it issues (server names as SANs), all
  generated into the test's directory with python3-cryptography; nothing is kept.
- TokenServer: the distribution token protocol on HTTPS 127.0.0.1:<free port>. GET /token with
  Basic credentials checked against `users` (a dict the test may change at any time), honouring
  `service`, `account` and every `scope`; an authenticated user gets what a scope asks for, an
  anonymous one gets no access (so every repository is private). Tokens are JWTs (ES256, python3-
  jwt) carrying an `x5c` chain that docker-registry checks against its `rootcertbundle` (the CA).
- TlsRegistry: harness.Registry with `http: tls:` and an `auth:` section.
"""

import base64
import datetime
import http.client
import http.server
import ipaddress
import json
import secrets
import ssl
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

import bcrypt
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import harness


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    """A certificate authority of the test's own, in `directory` (ca.crt, and <stem>.crt/.key
    per issued certificate)."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory, common_name="faasd test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        self.cert_path = self.dir / "ca.crt"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem, names=("127.0.0.1", "localhost"), server=True):
        """A certificate for `names` (IP addresses or DNS names, as SANs): (cert, key, paths)
        where paths = (cert_path, key_path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False) \
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return cert, key, (cert_path, key_path)

    def client_context(self):
        return ssl.create_default_context(cafile=str(self.cert_path))

    def skopeo_cert_dir(self):
        """A directory holding only ca.crt, as skopeo's --dest-cert-dir wants."""
        d = self.dir / "skopeo-certs"
        d.mkdir(exist_ok=True)
        (d / "ca.crt").write_bytes(self.cert_path.read_bytes())
        return d


class TokenServer:
    """The distribution token protocol for one `service`, signed for `issuer`. `users` maps
    user → password and may change while it runs; `requests` records every token request as
    {"user", "ok", "scopes"} (scopes granted)."""

    def __init__(self, ca, service="faasd-test-registry", issuer="faasd-test-issuer",
                 expires_in=3600):
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.users = {}
        self.requests = []
        self.failures = []  # (client port, what went wrong) per connection it could not serve
        self.lock = threading.Lock()
        _, _, (self.cert_path, self.key_path) = ca.issue("token-server")
        cert, key, _ = ca.issue("token-signer", names=("faasd test token signer",), server=False)
        self.signing_key = _pem_key(key)
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.server = None
        self.thread = None

    @property
    def realm(self):
        return f"https://127.0.0.1:{self.server.server_address[1]}/token"

    def start(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = owner.answer(self.path, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="faasd-test-token"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            # The handshake runs in the connection's own thread, bounded in time. A wrapped
            # listening socket would run every handshake inside accept() on the one serving
            # thread, where a single slow or silent client stalls all the others.
            def finish_request(self, request, client_address):
                request.settimeout(10)
                try:
                    tls = ctx.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError) as e:
                    with owner.lock:
                        owner.failures.append((client_address[1], repr(e)))
                    return
                try:
                    super().finish_request(tls, client_address)
                finally:
                    tls.close()

            def handle_error(self, request, client_address):
                with owner.lock:
                    owner.failures.append((client_address[1], traceback.format_exc()))

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_password(self, user, password):
        with self.lock:
            self.users[user] = password

    def answer(self, path, authorization):
        """(HTTP status, JSON body) for one GET."""
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        if url.path != "/token":
            return 404, {"error": "not found"}
        if query.get("service", [""])[0] != self.service:
            return 400, {"error": f"service must be {self.service}"}
        user = None
        if authorization.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except ValueError:
                return 400, {"error": "bad Basic credentials"}
            with self.lock:
                good = self.users.get(user) == password
            account = query.get("account", [user])[0]
            if not good or account != user:
                with self.lock:
                    self.requests.append({"user": user, "ok": False, "scopes": []})
                return 401, {"error": "unauthorized"}
        access = []
        for scope in " ".join(query.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user is not None and kind == "repository" and name:
                access.append({"type": kind, "name": name,
                               "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        token = jwt.encode(
            {"iss": self.issuer, "sub": user or "", "aud": self.service, "iat": now,
             "nbf": now - 10, "exp": now + self.expires_in, "jti": secrets.token_hex(8),
             "access": access},
            self.signing_key, algorithm="ES256", headers={"x5c": self.x5c})
        with self.lock:
            self.requests.append({"user": user, "ok": True, "scopes": access})
        return 200, {"token": token, "access_token": token, "expires_in": self.expires_in,
                     "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}

    def granted(self, user):
        """How many tokens with some access `user` was given so far."""
        with self.lock:
            return sum(1 for r in self.requests if r["user"] == user and r["ok"] and r["scopes"])

    def close(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def htpasswd_file(path, users):
    """An htpasswd file of bcrypt hashes, the only kind docker-registry accepts."""
    Path(path).write_text("".join(
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
        for u, p in users.items()))
    return path


class TlsRegistry(harness.Registry):
    """docker-registry on https://127.0.0.1:<free port> with a certificate for `cert_names`
    issued by `ca`, and `auth` (a YAML `auth:` section, or "" for none)."""

    def __init__(self, workdir, name, ca, cert_names=("127.0.0.1", "localhost"), auth=""):
        super().__init__(workdir, name)
        self.ca = ca
        _, _, (self.cert_path, self.key_path) = ca.issue(name, cert_names)
        self.auth = auth

    def config_yaml(self):
        return (super().config_yaml()
                + f"  tls:\n    certificate: {self.cert_path}\n    key: {self.key_path}\n"
                + self.auth)

    def ping(self):
        ctx = self.ca.client_context()
        ctx.check_hostname = False  # a certificate for another name is the point of some
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2, context=ctx)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status in (200, 401)
        finally:
            conn.close()

    @staticmethod
    def token_auth(token_server, ca):
        return ("auth:\n  token:\n"
                f"    realm: {token_server.realm}\n"
                f"    service: {token_server.service}\n"
                f"    issuer: {token_server.issuer}\n"
                f"    rootcertbundle: {ca.cert_path}\n")

    @staticmethod
    def htpasswd_auth(path):
        return f"auth:\n  htpasswd:\n    realm: faasd-test\n    path: {path}\n"
