"""Base images from mmdebstrap, and the images derived from them, cached by recipe hash.

No registry is reachable, so every image starts from a tarball that
mmdebstrap makes with the host's mirror. A tag carries the hash of its whole
recipe (parent included): a changed recipe gets a new tag, an unchanged one
is reused.
"""

import hashlib
import io
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import BuildError, ImageNotFound

from .errors import UserError
from .mirror import host_mirror
from .paths import cache_dir, made_once
from .progress import phase

DISTRIBUTIONS = ("bookworm", "trixie")
INIT_SYSTEMS = ("systemd", "sysvinit")
APT_INSTALL = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
)

# iproute2 gives testinfra's socket checks `ss`; procps gives pgrep/ps.
COMMON_TOOLS = "iproute2 procps ca-certificates"

# A real init as PID 1 and nothing else on the minbase system: what an autopkgtest
# testbed is, so a DEP-8 test that needs more must say so in its Depends.
INITS = {
    "systemd": f"""\
RUN {APT_INSTALL} systemd systemd-sysv dbus && apt-get clean
RUN systemctl mask getty@tty1.service console-getty.service systemd-firstboot.service
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
""",
    # systemd-standalone-sysusers/-tmpfiles keep packages that depend on
    # "systemd | systemd-standalone-*" from pulling systemd back in; rsyslog
    # is where Cyrus's log lines go without a journal.
    "sysvinit": f"""\
RUN {APT_INSTALL} sysvinit-core sysv-rc initscripts orphan-sysvinit-scripts \
    systemd-standalone-sysusers systemd-standalone-tmpfiles rsyslog && apt-get clean
RUN sed -i '/getty/d' /etc/inittab \
 && sed -i '/imklog/s/^/#/' /etc/rsyslog.conf
STOPSIGNAL SIGINT
CMD ["/sbin/init"]
""",
}
# systemd needs a cgroup2 hierarchy it may write and delegate from; Docker mounts the
# host's read-only. Run before /sbin/init by whatever starts a systemd machine.
CGROUP2_REMOUNT = (
    "umount -R /sys/fs/cgroup && mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup"
)


def content_digest(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def mmdebstrap_tarball(directory: Path, distribution: str, variant: str, *options: str) -> Path:
    """A system of the distribution as mmdebstrap makes it from the host's mirror, kept in
    `directory` under a name that changes with the recipe; older ones of it go."""
    mirror = host_mirror()
    stem = f"{distribution}-{variant}"
    tarball = directory / f"{stem}-{content_digest(variant, distribution, mirror, *options)}.tar"
    if tarball.exists():
        return tarball
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise UserError("mmdebstrap is not installed: apt-get install mmdebstrap")
    directory.mkdir(parents=True, exist_ok=True)

    def make() -> None:
        partial = directory / f"{stem}.partial"
        with phase(f"making a {distribution} {variant} system with mmdebstrap"):
            result = subprocess.run(
                [mmdebstrap, "--quiet", f"--variant={variant}", "--format=tar", *options,
                 distribution, str(partial), mirror],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                partial.unlink(missing_ok=True)
                raise UserError(f"mmdebstrap {distribution} failed:\n{result.stderr[-4000:]}")
            for stale in directory.glob(f"{stem}-*.tar"):
                stale.unlink()
            partial.rename(tarball)

    made_once(tarball.name, tarball.exists, make)
    return tarball


def minbase_tarball(distribution: str) -> Path:
    """The root of our images and of piuparts' chroots, in the machine's cache."""
    return mmdebstrap_tarball(cache_dir() / "tarballs", distribution, "minbase")


def base_image(client: docker.DockerClient, distribution: str) -> str:
    """A minbase image of the distribution, imported from mmdebstrap's tarball."""
    tarball = minbase_tarball(distribution)
    repository, version = f"cyrus-deb/base-{distribution}", tarball.stem.rsplit("-", 1)[1]
    tag = f"{repository}:{version}"
    made_once(
        tag,
        lambda: image_exists(client, tag),
        lambda: client.api.import_image_from_file(str(tarball), repository=repository, tag=version),
    )
    return tag


@dataclass(frozen=True)
class Recipe:
    """A Dockerfile body on top of a parent image, with the files it COPYs."""

    name: str
    parent: str
    body: str
    files: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def dockerfile(self) -> str:
        return f"FROM {self.parent}\n{self.body}"

    @property
    def tag(self) -> str:
        parts: list[bytes | str] = [self.dockerfile, *(f"{n}\0" for n in sorted(self.files))]
        parts += [self.files[n] for n in sorted(self.files)]
        return f"cyrus-deb/{self.name}:{content_digest(*parts)}"


def _context(recipe: Recipe) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in {"Dockerfile": recipe.dockerfile.encode(), **recipe.files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def ensure_image(client: docker.DockerClient, recipe: Recipe) -> str:
    """Build the recipe unless an image with its tag exists; return the tag."""

    def build() -> None:
        with phase(f"building image {recipe.tag}"):
            try:
                client.images.build(
                    fileobj=_context(recipe),
                    custom_context=True,
                    tag=recipe.tag,
                    rm=True,
                    forcerm=True,
                )
            except BuildError as error:
                log = "".join(chunk.get("stream", "") for chunk in error.build_log)
                raise UserError(f"building {recipe.tag} failed:\n{log[-6000:]}") from error

    made_once(recipe.tag, lambda: image_exists(client, recipe.tag), build)
    return recipe.tag


def init_image(client: docker.DockerClient, distribution: str, init: str) -> str:
    """The distribution's minbase system with a real init as PID 1, and nothing more."""
    if init not in INITS:
        raise UserError(f"unknown init system {init!r}; choose from {', '.join(INITS)}")
    parent = base_image(client, distribution)
    return ensure_image(client, Recipe(f"{init}-only-{distribution}", parent, INITS[init]))


def flavour_image(client: docker.DockerClient, distribution: str, init: str) -> str:
    """The distribution with a real init as PID 1 and the tools the tests read it with."""
    parent = init_image(client, distribution, init)
    body = f"RUN {APT_INSTALL} {COMMON_TOOLS} && apt-get clean\n"
    return ensure_image(client, Recipe(f"{init}-{distribution}", parent, body))
