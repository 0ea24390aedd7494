"""Fetch micropython-modbus 2.3.7, a test peer only, into build/peers/umodbus.

Its source archive has no setup file, so pip cannot install it. We ask the package index pip is configured
with (no host name is written here), check the archive against a pinned SHA-256 and unpack it. Nothing of it
is committed: build/ is ignored.
"""
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request

NAME = "micropython-modbus"
VERSION = "2.3.7"
SHA256 = "b9351a66af0ff29dd585900e53827a989dedcb02ec63b1041358165089652271"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEST = os.path.join(ROOT, "build", "peers")
MARK = os.path.join(DEST, "umodbus", ".sha256")


def index_url():
    out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                         capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip().rstrip("/") + "/"
    from pip._internal.models.index import PyPI  # pip's own default index
    return PyPI.simple_url.rstrip("/") + "/"


def main():
    if os.path.exists(MARK) and open(MARK).read().strip() == SHA256:
        return 0
    page_url = index_url() + NAME + "/"
    page = urllib.request.urlopen(page_url, timeout=60).read().decode()
    wanted = "%s-%s.tar.gz" % (NAME, VERSION)
    for href in re.findall(r'href="([^"]+)"', page):
        if wanted in href:
            break
    else:
        sys.exit("fetch_peer: %s not listed on the index" % wanted)
    url = urllib.parse.urljoin(page_url, href.split("#")[0])
    data = urllib.request.urlopen(url, timeout=120).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit("fetch_peer: %s has sha256 %s, expected %s" % (wanted, digest, SHA256))
    os.makedirs(DEST, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) > 2 and parts[1] == "umodbus" and member.isfile():
                target = os.path.join(DEST, *parts[1:])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(tar.extractfile(member).read())
    with open(MARK, "w") as f:
        f.write(SHA256)
    print("fetch_peer: %s %s unpacked into build/peers/umodbus" % (NAME, VERSION))
    return 0


if __name__ == "__main__":
    sys.exit(main())
