"""Throwaway certificates for the security tests, made with the openssl command line at test
time: a CA and leaf certificates (EC P-256, one day) for 127.0.0.1 / localhost, each usable as a
TLS server and client certificate.

    pki = Pki(directory)
    ca = pki.ca("test-ca")                       # ca.crt / ca.key in directory/test-ca/
    leaf = pki.leaf(ca, "coordinator")           # directory/coordinator/{tls.crt,tls.key,ca.crt}

A leaf's directory has the Kubernetes TLS secret layout (tls.crt, tls.key) plus the CA that
signed it as ca.crt; Leaf.secret_dir(trust=other_ca) makes one whose ca.crt is another CA.
"""

import os
import shutil
import subprocess

EXTENSIONS = """basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
"""


def _openssl(*args):
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


class Ca:
    def __init__(self, directory, name):
        self.dir = os.path.join(directory, name)
        os.makedirs(self.dir)
        self.cert = os.path.join(self.dir, "ca.crt")
        self.key = os.path.join(self.dir, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "1",
                 "-subj", f"/CN={name}")

    def pem(self):
        with open(self.cert, "rb") as f:
            return f.read()


class Leaf:
    def __init__(self, directory, ca, name):
        self.dir = os.path.join(directory, name)
        os.makedirs(self.dir)
        self.ca = ca
        self.cert = os.path.join(self.dir, "tls.crt")
        self.key = os.path.join(self.dir, "tls.key")
        csr = os.path.join(self.dir, "tls.csr")
        ext = os.path.join(self.dir, "ext.cnf")
        with open(ext, "w") as f:
            f.write(EXTENSIONS)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.key, "-out", csr, "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
                 "-CAcreateserial", "-out", self.cert, "-days", "1", "-extfile", ext)
        shutil.copy(ca.cert, os.path.join(self.dir, "ca.crt"))

    def secret_dir(self, trust, name):
        """A copy of this leaf's secret directory whose ca.crt is `trust`'s certificate."""
        out = os.path.join(os.path.dirname(self.dir), name)
        os.makedirs(out)
        shutil.copy(self.cert, os.path.join(out, "tls.crt"))
        shutil.copy(self.key, os.path.join(out, "tls.key"))
        shutil.copy(trust.cert, os.path.join(out, "ca.crt"))
        return out


class Pki:
    def __init__(self, directory):
        self.dir = directory

    def ca(self, name):
        return Ca(self.dir, name)

    def leaf(self, ca, name):
        return Leaf(self.dir, ca, name)
