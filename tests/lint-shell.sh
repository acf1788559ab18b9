#!/bin/sh
# Runs ShellCheck and sh -n on every shell script of the project, maintainer
# scripts and the init script included. Perl scripts are checked with perl -c.
set -eu
# SC1091: files the scripts source on the target (lsb init-functions) are not
# on the machine that lints them.
cd "$(dirname "$0")/.."

status=0
for script in cyrus-deb .ci/run tests/lint-shell.sh debian/*.postinst debian/*.postrm \
    debian/*.preinst debian/*.prerm debian/*.init debian/scripts/* debian/tests/*; do
    [ -f "$script" ] || continue
    # debian/tests also holds data (control, the known failures): scripts only.
    [ "$(head -c 2 "$script")" = "#!" ] || continue
    case "$(head -n 1 "$script")" in
        *python3*)
            ;; # ruff checks it (tox env lint)
        *perl*)
            perl -c "$script" 2>&1 | grep -v 'syntax OK$' || true
            perl -c "$script" > /dev/null 2>&1 || status=1
            ;;
        *)
            sh -n "$script" || status=1
            shellcheck --shell=sh --exclude=SC1091 "$script" || status=1
            ;;
    esac
done
exit $status
