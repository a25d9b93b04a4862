"""Build the environment server images with podman where no container registry is reachable.

The recipe (docs/containers.md) is the one measured on these machines: a Debian root made by
``debootstrap --variant=minbase`` and imported with ``podman import`` stands in for the registry's
``debian:bookworm-slim``; every build and run goes through runc with lowered ulimits (crun refuses
cgroups in hybrid mode, and both runtimes refuse the default RLIMIT_NPROC/NOFILE). The base root is
cached twice, keyed by a hash of its recipe: as a tarball under the harness cache directory, and as
a tagged image (``podman image exists``). The images themselves are cached by podman's layer cache.

Where this machine needs it, pip in the build gets the host's CA bundle (TLS-intercepting egress)
and a local directory holding the pinned CPU torch wheel (when the PyTorch index is unreachable),
both as read-only build volumes that never reach an image layer.

    python containers/build.py                  # webshop and alfworld images (cached)
    python containers/build.py webshop -v       # one image, with the build log
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `harness` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from foundation.data import cache_dir  # noqa: E402

log = logging.getLogger("containers.build")

CONTAINERFILE = REPO_ROOT / "containers" / "Containerfile"
IMAGES: dict[str, str] = {
    "webshop": "localhost/prism-webshop:latest",
    "alfworld": "localhost/prism-alfworld:latest",
    "vllm": "localhost/prism-vllm:latest",
}
"""Containerfile target -> the tag it is built as (compose.yaml uses the same names)."""
DEFAULT_TARGETS = ("webshop", "alfworld")
"""What a plain build makes: the environment servers (the CPU vLLM image is 3.5 GB; ask for it by name)."""
LABEL = "prism-harness.image"

ULIMITS = ("nproc=1000:1000", "nofile=1024:1024")
"""Lowered limits: without them runc cannot set RLIMIT_NPROC/NOFILE here (EPERM)."""

DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT_S = 3600
WHEEL_MOUNT = "/run/host-wheels"
CA_MOUNT = "/run/host-ca.pem"


class ContainerBuildError(RuntimeError):
    """A build step failed, or a tool it needs is missing (the message says which and how to fix it)."""


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ContainerBuildError(f"{tool!r} is not installed; run `bash scripts/setup_containers.sh` (as root)")
    return path


def runtime() -> str:
    """The OCI runtime every container uses: runc (crun refuses cgroups in hybrid mode here)."""
    return _require("runc")


def podman_cmd() -> list[str]:
    """``podman`` with this machine's runtime: every build, run and removal goes through it."""
    return [_require("podman"), "--runtime", runtime()]


def ulimit_args() -> list[str]:
    """``--ulimit`` flags for ``podman build`` and ``podman run``."""
    return [arg for limit in ULIMITS for arg in ("--ulimit", limit)]


def image_exists(tag: str) -> bool:
    return subprocess.run([*podman_cmd(), "image", "exists", tag], check=False).returncode == 0


def _run(cmd: Sequence[str], quiet: bool, **kwargs) -> None:
    log.debug("$ %s", " ".join(map(str, cmd)))
    result = subprocess.run(list(map(str, cmd)), check=False, text=True, timeout=BUILD_TIMEOUT_S,
                            stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
                            **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-40:])
        raise ContainerBuildError(f"`{' '.join(map(str, cmd[:6]))} ...` failed (exit {result.returncode})\n{tail}")


# -- the base image ---------------------------------------------------------------------------------
def apt_mirror() -> str:
    """The Debian mirror of this machine's apt sources (deb822 or one-line format), else deb.debian.org."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for block in text.split("\n\n"):  # deb822: URIs/Suites fields in one stanza
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and "bookworm" in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1).rstrip("/")
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M):
            return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


@dataclass(frozen=True)
class BaseRecipe:
    """What the base root is made from; its hash names the cached tarball and the image tag."""

    suite: str = "bookworm"
    variant: str = "minbase"
    mirror: str = DEFAULT_MIRROR

    @property
    def key(self) -> str:
        text = f"debootstrap --variant={self.variant} {self.suite} ROOT {self.mirror}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"localhost/prism-debian:{self.suite}-{self.key}"

    @property
    def tarball(self) -> Path:
        return cache_dir() / "containers" / f"debian-{self.suite}-{self.variant}-{self.key}.tar"


def ensure_base(recipe: BaseRecipe, quiet: bool = True) -> str:
    """The base image's tag, building it only when neither the image nor its cached tarball exists."""
    if image_exists(recipe.tag):
        log.info("base image %s: cached", recipe.tag)
        return recipe.tag
    tarball = recipe.tarball
    if not tarball.is_file():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        debootstrap = _require("debootstrap")
        log.info("base image: debootstrap %s (%s) from %s, about a minute", recipe.suite, recipe.variant,
                 recipe.mirror)
        with tempfile.TemporaryDirectory(dir=tarball.parent, prefix=".root-") as tmp:
            root = Path(tmp) / "root"
            _run([debootstrap, f"--variant={recipe.variant}", recipe.suite, root, recipe.mirror], quiet)
            partial = Path(tmp) / tarball.name
            _run([_require("tar"), "-C", root, "-c", "-f", partial, "."], quiet)
            partial.replace(tarball)  # atomic: a half-written tarball is never taken for a cached one
    log.info("base image: importing %s as %s", tarball.name, recipe.tag)
    _run([*podman_cmd(), "import", tarball, recipe.tag], quiet)
    return recipe.tag


# -- the images -------------------------------------------------------------------------------------
def pinned_torch() -> str:
    """The torch version pyproject.toml pins (the wheel a find-links directory must hold)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"torch\s*==\s*([\w.]+)", requirement.strip())
        if match:
            return match.group(1)
    raise ContainerBuildError("pyproject.toml pins no torch version (expected a `torch==X` dependency)")


def torch_wheel_dir(find_links: Sequence[str], version: str) -> Path | None:
    """The first local find-links directory that holds a CPU wheel of ``version`` (for Python 3.11)."""
    for entry in find_links:
        path = Path(entry.removeprefix("file://"))
        if path.is_dir() and any(path.glob(f"torch-{version}+cpu-cp311-*.whl")):
            return path
    return None


def _pip_setting(name: str) -> str:
    """A pip option as the host's pip sees it: ``$PIP_<NAME>``, else pip's configuration files."""
    value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
    if value:
        return value
    result = subprocess.run([sys.executable, "-m", "pip", "config", "get", f"global.{name}"], capture_output=True,
                            text=True, check=False, timeout=60)
    return result.stdout.strip() if result.returncode == 0 else ""


@dataclass(frozen=True)
class BuildSettings:
    """How pip inside the build reaches its packages on this machine."""

    find_links: tuple[str, ...] = ()
    ca_bundle: str | None = None

    @classmethod
    def from_environment(cls) -> BuildSettings:
        """The host pip's own settings (``find-links``, ``cert``; the CA bundle defaults to the system's)."""
        system_bundle = "/etc/ssl/certs/ca-certificates.crt"
        ca_bundle = _pip_setting("cert") or (system_bundle if Path(system_bundle).is_file() else None)
        return cls(find_links=tuple(_pip_setting("find-links").split()), ca_bundle=ca_bundle)

    def build_args(self) -> list[str]:
        args: list[str] = []
        wheels = torch_wheel_dir(self.find_links, pinned_torch())
        if wheels is not None:
            log.info("torch: the CPU wheel from %s (the PyTorch index is not needed)", wheels)
            args += ["-v", f"{wheels}:{WHEEL_MOUNT}:ro", "--build-arg", f"PIP_FIND_LINKS={WHEEL_MOUNT}",
                     "--build-arg", "TORCH_INDEX_URL="]
        if self.ca_bundle:
            if not Path(self.ca_bundle).is_file():
                raise ContainerBuildError(f"CA bundle {self.ca_bundle} does not exist")
            args += ["-v", f"{Path(self.ca_bundle).resolve()}:{CA_MOUNT}:ro", "--build-arg", f"PIP_CERT={CA_MOUNT}"]
        return args


def build_image(target: str, base: str, settings: BuildSettings, quiet: bool = True) -> str:
    """Build one Containerfile target on ``base``; podman's layer cache makes an unchanged rebuild quick."""
    if target not in IMAGES:
        raise ContainerBuildError(f"unknown image {target!r}; choose from {', '.join(IMAGES)}")
    tag = IMAGES[target]
    log.info("image %s: building target %r (cached layers are reused)", tag, target)
    _run([*podman_cmd(), "build", "--layers", "--format", "docker", "--network", "host", *ulimit_args(),
          "-f", CONTAINERFILE, "--target", target, "-t", tag, "--build-arg", f"BASE_IMAGE={base}",
          *settings.build_args(), REPO_ROOT], quiet)
    return tag


def ensure_images(targets: Sequence[str] = DEFAULT_TARGETS, settings: BuildSettings | None = None,
                  recipe: BaseRecipe | None = None, quiet: bool = True) -> dict[str, str]:
    """Build (or reuse) the base and the ``targets``; returns target -> image tag."""
    unknown = sorted(set(targets) - set(IMAGES))
    if unknown:
        raise ContainerBuildError(f"unknown image(s) {', '.join(unknown)}; choose from {', '.join(IMAGES)}")
    base = ensure_base(recipe or BaseRecipe(mirror=apt_mirror()), quiet)
    settings = settings or BuildSettings.from_environment()
    tags = {target: build_image(target, base, settings, quiet) for target in targets}
    # Earlier builds of these images, now untagged, hold on to outdated layers: drop them (ours only).
    _run([*podman_cmd(), "image", "prune", "--force", "--filter", f"label={LABEL}"], quiet)
    return tags


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", default=list(DEFAULT_TARGETS),
                        help=f"images to build: {', '.join(IMAGES)} (default: {' '.join(DEFAULT_TARGETS)})")
    parser.add_argument("--mirror", default=None, help="Debian mirror for the base root (default: apt sources)")
    parser.add_argument("--find-links", action="append", default=None,
                        help="directory with the pinned CPU torch wheel (default: pip's find-links)")
    parser.add_argument("--ca-bundle", default=None, help="CA bundle pip trusts in the build (default: pip's cert "
                        "or the system bundle); '' for none")
    parser.add_argument("--verbose", "-v", action="store_true", help="show the build output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[build] %(message)s")
    defaults = BuildSettings.from_environment()
    settings = BuildSettings(
        find_links=tuple(args.find_links) if args.find_links is not None else defaults.find_links,
        ca_bundle=(args.ca_bundle or None) if args.ca_bundle is not None else defaults.ca_bundle,
    )
    try:
        tags = ensure_images(args.targets, settings, BaseRecipe(mirror=args.mirror or apt_mirror()),
                             quiet=not args.verbose)
    except (ContainerBuildError, subprocess.TimeoutExpired) as exc:
        log.error("%s", exc)
        return 1
    for tag in tags.values():
        sys.stdout.write(tag + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
