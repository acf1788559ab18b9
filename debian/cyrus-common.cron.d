# Daily Cyrus maintenance for systems without systemd; under systemd
# cyrus-daily.timer does the same job and this line does nothing.
30 4 * * *	root	[ -d /run/systemd/system ] || /usr/lib/cyrus/cyrus-daily
