package IO::File::fcntl;
# Stand-in (debian/tests/cassandane-stand-ins/README): loads, and makes objects,
# so that set-up code which only builds a client passes; any use of one dies.
use strict;
use warnings;
our $VERSION = '0.001';
our $AUTOLOAD;
sub new { my ($class) = @_; return bless {}, $class }
sub new_fromstring { my ($class) = @_; return bless {}, $class }
sub DESTROY { }
sub AUTOLOAD {
    die "$AUTOLOAD: IO::File::fcntl is a stand-in (Debian 13 does not package it), and this test needs the real module\n";
}
1;
