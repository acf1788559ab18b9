package Net::CalDAVTalk;
# A stand-in: DebianStandIn.pm and README say what that means.
use strict;
use warnings;
use parent 'DebianStandIn';
our $VERSION = '0.12';
# Cassandane's set-up calls this on every suite that enables CalDAV (Delete
# does, and never talks CalDAV afterwards); it only records the test user's
# calendar address, which a test that does talk CalDAV reaches through other
# methods, and those die.
sub UpdateAddressSet { return }
1;
