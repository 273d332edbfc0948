"""A loopback mirror of holi-lab/ValuePortrait, laid out as upstream, for the fresh-clone check.

    python .ci/mirror.py SRC DEST [--serve URLFILE]

Copies the data root SRC (../shared/valueportrait: its recorded outputs are `.json.xz`) into
DEST as upstream has it (plain `.json`, each `.xz` decompressed), then, with --serve, serves
DEST on 127.0.0.1 at a free port, writes the base URL into URLFILE once it listens, and serves
until killed. `.ci/run` points VPBATCH_DATA_URL at it, so the tests' data arrives through the
same fetch a new user's does.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import lzma
import shutil
import sys
from pathlib import Path


def build(src: Path, dest: Path) -> int:
    """Copy every file of `src` into `dest`, decompressing `.xz`; return how many."""
    n = 0
    for p in sorted(src.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(src)
        out = dest / (str(rel).removesuffix(".xz") if p.suffix == ".xz" else rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".xz":
            with lzma.open(p) as f, open(out, "wb") as g:
                shutil.copyfileobj(f, g, 1 << 20)
        else:
            shutil.copyfile(p, out)
        n += 1
    return n


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass  # hundreds of GETs would bury the test output


def serve(root: Path, url_file: Path) -> None:
    handler = functools.partial(_Quiet, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        port = httpd.server_address[1]
        tmp = url_file.with_name(url_file.name + ".tmp")
        tmp.write_text(f"http://127.0.0.1:{port}\n")
        tmp.replace(url_file)  # the URL appears whole, and only once the socket listens
        httpd.serve_forever()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--serve", type=Path, metavar="URLFILE")
    a = ap.parse_args(argv)
    n = build(a.src, a.dest)
    print(f"mirror: {n} files from {a.src} in the upstream layout under {a.dest}", flush=True)
    if a.serve is not None:
        serve(a.dest, a.serve)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
