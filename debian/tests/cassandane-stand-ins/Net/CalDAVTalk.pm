package Net::CalDAVTalk;
# Stand-in (debian/tests/cassandane-stand-ins/README): loads, and makes objects,
# so that set-up code which only builds a client passes; any use of one dies.
use strict;
use warnings;
our $VERSION = '0.12';
our $AUTOLOAD;
sub new { my ($class) = @_; return bless {}, $class }
sub new_fromstring { my ($class) = @_; return bless {}, $class }
sub DESTROY { }
# Cassandane's set-up calls this on every suite that enables CalDAV (Delete
# does, and never talks CalDAV afterwards); it only records the test user's
# calendar address, which a test that does talk CalDAV reaches through other
# methods, and those die.
sub UpdateAddressSet { return }
sub AUTOLOAD {
    die "$AUTOLOAD: Net::CalDAVTalk is a stand-in (Debian 13 does not package it), and this test needs the real module\n";
}
1;
