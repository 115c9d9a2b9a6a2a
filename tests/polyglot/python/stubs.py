"""Generate Python stubs for the facade's .proto files and import them.

The stubs are generated at test time with ``python -m grpc_tools.protoc`` from
the repository's ``proto/`` directory into a temporary directory (removed when
the process exits), so no generated code is ever committed. ``google.rpc``
(status, error details) comes from ``googleapis-common-protos`` and the health
client from ``grpcio-health-checking``, exactly as a Python caller would use them.

Run ``python stubs.py OUT_DIR`` to write the stubs somewhere you can read them.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

REPO_ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = Path(os.environ.get("FACADE_PROTO_DIR", REPO_ROOT / "proto")).resolve()
# google/protobuf/*.proto (Struct, Timestamp, ...) ship inside grpcio-tools.
WKT_DIR = Path(grpc_tools.__file__).resolve().parent / "_proto"


def proto_files() -> list[Path]:
    files = sorted(PROTO_DIR.glob("portone/facade/v1/*.proto"))
    if not files:
        raise RuntimeError(f"no .proto files under {PROTO_DIR}/portone/facade/v1")
    return files


def generate(out_dir: Path) -> None:
    """Run protoc (from grpcio-tools) for every facade .proto into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{WKT_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_DIR)) for p in proto_files()],
    ]
    res = subprocess.run(cmd, cwd=PROTO_DIR, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(
            f"protoc failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}"
        )


def _load():
    out_dir = Path(tempfile.mkdtemp(prefix="portone-facade-pystubs-"))
    atexit.register(shutil.rmtree, out_dir, True)
    generate(out_dir)
    sys.path.insert(0, str(out_dir))
    importlib.invalidate_caches()
    mods = {
        name: importlib.import_module(f"portone.facade.v1.{name}")
        for name in (
            "payment_prepare_service_pb2",
            "payment_prepare_service_pb2_grpc",
            "payment_link_service_pb2",
            "payment_link_service_pb2_grpc",
            "payment_verification_service_pb2",
            "payment_verification_service_pb2_grpc",
        )
    }
    return out_dir, mods


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stubs.py OUT_DIR")
    generate(Path(sys.argv[1]))
    print(f"stubs written to {sys.argv[1]}")
    sys.exit(0)

STUBS_DIR, _mods = _load()
prepare_pb2 = _mods["payment_prepare_service_pb2"]
prepare_grpc = _mods["payment_prepare_service_pb2_grpc"]
link_pb2 = _mods["payment_link_service_pb2"]
link_grpc = _mods["payment_link_service_pb2_grpc"]
verification_pb2 = _mods["payment_verification_service_pb2"]
verification_grpc = _mods["payment_verification_service_pb2_grpc"]
