"""Generate the GoBGP gRPC stubs from the .proto files the Debian package ships.

Run at install time (`make venv`, the Dockerfile): `python -m bgplb.agent.speaker.protogen`.
The output is build output, never edited or committed.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path

DEBIAN_PROTOS = Path("/usr/share/gocode/src/github.com/osrg/gobgp/api")
OUT = Path(__file__).with_name("stubs")
PROTOS = ("gobgp.proto", "attribute.proto", "capability.proto")


def generate(proto_dir: Path = DEBIAN_PROTOS, out: Path = OUT) -> None:
    from grpc_tools import protoc

    missing = [p for p in PROTOS if not (proto_dir / p).is_file()]
    if missing:
        raise SystemExit(
            f"GoBGP protos {missing} not found in {proto_dir}: "
            "install the Debian package golang-github-osrg-gobgp-dev"
        )
    out.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(proto_dir / p) for p in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on the GoBGP protos")
    # protoc writes `import gobgp_pb2`: make it relative so the stubs live in our package.
    for path in out.glob("*_pb2*.py*"):
        text = path.read_text()
        fixed = re.sub(r"^import (\w+_pb2)( as \w+)?$", r"from . import \1\2", text, flags=re.M)
        path.write_text(fixed)
    (out / "__init__.py").write_text('"""Generated GoBGP v3 stubs (apipb); do not edit."""\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--protos", type=Path, default=DEBIAN_PROTOS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    generate(args.protos, args.out)
    print(f"GoBGP stubs written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
