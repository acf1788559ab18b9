"""debian/watch, as a maintainer runs it for a new upstream release: uscan (devscripts from
trixie-backports, as debian/README.source says) finds the newest release on the releases
page, checks its detached signature against debian/upstream/signing-key.asc and repacks it
as debian/copyright's Files-Excluded and debian/README.source say.

GitHub is out of reach here, so a web server in the same container plays it: the watch
file's two GitHub addresses are swapped for the server's, and a throwaway key signs the
release in place of upstream's. Everything else, the watch file's pattern, mangles and
options and uscan's whole chain (download, signature, mk-origtargz), is what a maintainer
gets."""

import shlex
from pathlib import Path

import pytest

from cyrus_deb.engine import run_to_completion
from cyrus_deb.images import APT_INSTALL, Recipe, base_image, ensure_image
from cyrus_deb.mirror import host_mirror
from cyrus_deb.paths import DEBIAN_DIR
from cyrus_testbed.boot import DISTRIBUTION

pytestmark = [pytest.mark.integration]

# Upstream's release manager's key, as debian/README.source names it.
UPSTREAM_FINGERPRINT = "5B55619A9D7040A9DEE2A2CB554F04FEB36378E0"
BACKPORTS = f"{DISTRIBUTION}-backports"
NEW_RELEASE = "3.12.99"
SERVER = "http://127.0.0.1:8080"
RUN_TIMEOUT_S = 300

# A release tarball with what Files-Excluded removes next to what it must keep.
MAKE_RELEASE = f"""
release=cyrus-imapd-{NEW_RELEASE}
mkdir -p /srv/upstream/$release/docsrc/exts/sphinxlocal/builders/__pycache__ \\
         /srv/upstream/$release/docsrc/exts/sphinxlocal/__pycache__
echo 'print("kept")' > /srv/upstream/$release/docsrc/exts/sphinxlocal/builders/manpage.py
echo compiled > /srv/upstream/$release/docsrc/exts/sphinxlocal/builders/__pycache__/manpage.pyc
echo compiled > /srv/upstream/$release/docsrc/exts/sphinxlocal/__pycache__/__init__.pyc
echo upstream > /srv/upstream/$release/README.md
download=/srv/www/gh/cyrusimap/cyrus-imapd/releases/download/$release
mkdir -p $download /srv/www/api/repos/cyrusimap/cyrus-imapd
tar -czf $download/$release.tar.gz -C /srv/upstream $release
export GNUPGHOME=$(mktemp -d)
gpg --batch --passphrase '' --quick-gen-key 'Throwaway release key <release@example.invalid>' \\
    ed25519 sign never 2>/dev/null
gpg --batch --detach-sign --output $download/$release.tar.gz.sig $download/$release.tar.gz
printf '[{{"tag_name": "%s", "assets": [{{"browser_download_url": "%s"}}]}}]' \\
    $release {SERVER}/gh/cyrusimap/cyrus-imapd/releases/download/$release/$release.tar.gz \\
    > /srv/www/api/repos/cyrusimap/cyrus-imapd/releases
mkdir -p /srv/source
cp -a /srv/debian /srv/source/debian
gpg --armor --export > /srv/source/debian/upstream/signing-key.asc
sed -i -e 's#https://api.github.com#{SERVER}/api#' -e 's#https://github.com#{SERVER}/gh#' \\
    /srv/source/debian/watch
cd /srv/www && python3 -m http.server 8080 --bind 127.0.0.1 >/dev/null 2>&1 &
sleep 1
"""
# The tarball is changed after it was signed.
TAMPER = f"""
release=cyrus-imapd-{NEW_RELEASE}
echo 'one more file' > /tmp/extra
gzip -c /tmp/extra >> /srv/www/gh/cyrusimap/cyrus-imapd/releases/download/$release/$release.tar.gz
"""
RUN_USCAN = """
mkdir -p /srv/out && cd /srv/source
status=0
uscan --verbose --destdir /srv/out || status=$?
echo "uscan exit $status"
echo '--- orig'
tar -tJf /srv/out/cyrus-imapd_*.orig.tar.xz 2>/dev/null | sort
"""


@pytest.fixture(scope="module")
def uscan_image(docker_engine) -> str:
    # trixie's devscripts (2.25.15) reads watch files up to version 4; its backport reads 5.
    body = (
        f"RUN echo 'deb {host_mirror()} {BACKPORTS} main' > /etc/apt/sources.list.d/backports.list"
        f" && {APT_INSTALL} -t {BACKPORTS} devscripts"
        " && apt-get install -y --no-install-recommends gnupg gpgv python3 xz-utils libwww-perl"
        " && apt-get clean\n"
    )
    parent = base_image(docker_engine, DISTRIBUTION)
    return ensure_image(docker_engine, Recipe(f"uscan-{DISTRIBUTION}", parent, body))


def run_in_uscan_image(client, image: str, script: str) -> tuple[int | None, str, list[str]]:
    """uscan's exit code, everything printed, and the members of the orig it made."""
    finished = run_to_completion(
        client,
        image,
        ["sh", "-euc", script],
        timeout_s=RUN_TIMEOUT_S,
        volumes={str(DEBIAN_DIR): {"bind": "/srv/debian", "mode": "ro"}},
    )
    assert finished.exit_code == 0, finished.output[-4000:]
    report, _, listing = finished.output.rpartition("--- orig\n")
    exit_line = next(line for line in report.splitlines() if line.startswith("uscan exit"))
    return int(exit_line.split()[-1]), report, listing.split()


def test_uscan_fetches_a_signed_release_and_repacks_it_without_the_excluded_caches(
    docker_engine, uscan_image
):
    exit_code, report, members = run_in_uscan_image(
        docker_engine, uscan_image, MAKE_RELEASE + RUN_USCAN
    )
    assert exit_code == 0, report[-4000:]
    assert "Verifying OpenPGP signature" in report, report[-4000:]
    top = f"cyrus-imapd-{NEW_RELEASE}/"
    assert f"{top}docsrc/exts/sphinxlocal/builders/manpage.py" in members, members
    assert f"{top}README.md" in members, members
    assert [m for m in members if "__pycache__" in m] == [], members


def test_uscan_refuses_a_release_whose_signature_does_not_match(docker_engine, uscan_image):
    exit_code, report, members = run_in_uscan_image(
        docker_engine, uscan_image, MAKE_RELEASE + TAMPER + RUN_USCAN
    )
    assert exit_code != 0, report[-4000:]
    assert "No Valid Signature" in report, report[-4000:]
    assert members == [], members


def test_the_shipped_signing_key_is_upstreams_release_key(docker_engine, uscan_image):
    key = Path("/srv/debian/upstream/signing-key.asc")
    finished = run_to_completion(
        docker_engine,
        uscan_image,
        ["sh", "-c", f"gpg --show-keys --with-colons {shlex.quote(str(key))}"],
        timeout_s=RUN_TIMEOUT_S,
        volumes={str(DEBIAN_DIR): {"bind": "/srv/debian", "mode": "ro"}},
    )
    fingerprints = [
        line.split(":")[9] for line in finished.output.splitlines() if line.startswith("fpr:")
    ]
    assert fingerprints[:1] == [UPSTREAM_FINGERPRINT], finished.output
    spaced = " ".join(UPSTREAM_FINGERPRINT[i : i + 4] for i in range(0, 40, 4))
    assert spaced in " ".join((DEBIAN_DIR / "README.source").read_text().split())
