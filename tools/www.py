"""Build the web files: every file under firmware/www/ gzip-compressed into an output directory (default
build/www/), which deploy.py copies to the device's www/ directory. The box serves them as they are
(Content-Encoding: gzip) with the gzip trailer (CRC-32 and size) as ETag, so nothing is compressed or hashed on
the box. The gzip header carries no time or name, so a rebuild of the same file is byte-identical (same ETag).

    python tools/www.py [OUT_DIR]
"""
import os
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "firmware", "www")
WINDOW_BITS = 10  # a 1 KB window: what the box needs to inflate a file for a client without gzip (http/service.py)


def gzip_bytes(data):
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + WINDOW_BITS)  # 16+: the gzip wrapper, mtime 0, no name
    return c.compress(data) + c.flush()


def build(out_dir=None, src=SRC):
    """-> [(remote path, local path)] of the gzip files, e.g. ("www/index.html.gz", ".../index.html.gz")."""
    out_dir = out_dir or os.path.join(ROOT, "build", "www")
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for fn in sorted(filenames):
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            out = os.path.join(out_dir, rel + ".gz")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(path, "rb") as f:
                data = gzip_bytes(f.read())
            with open(out, "wb") as f:
                f.write(data)
            files.append(("www/" + rel + ".gz", out))
    return files


if __name__ == "__main__":
    total = 0
    for remote, local in build(sys.argv[1] if len(sys.argv) > 1 else None):
        total += os.path.getsize(local)
        print("%s  %d bytes" % (remote, os.path.getsize(local)))
    print("page bundle: %d bytes gzip in total (bar 61440)" % total)
