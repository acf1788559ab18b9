# Daily Cyrus maintenance for systems without systemd; under systemd
# cyrus-daily.timer does the same job and this line does nothing, as it does
# once cyrus-common is removed but not purged (Policy 9.5).
30 4 * * *	root	if [ ! -d /run/systemd/system ] && [ -x /usr/lib/cyrus/cyrus-daily ]; then /usr/lib/cyrus/cyrus-daily; fi
