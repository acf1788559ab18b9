package Mail::JMAPTalk;
# Stand-in (debian/tests/cassandane-stand-ins/README): loads, and makes objects,
# so that set-up code which only builds a client passes; any use of one dies.
use strict;
use warnings;
our $VERSION = '0.15';
our $AUTOLOAD;
sub new { my ($class) = @_; return bless {}, $class }
sub new_fromstring { my ($class) = @_; return bless {}, $class }
sub DESTROY { }
# Cassandane's set-up calls these on every suite that enables JMAP (Sieve
# does, for its iMIP tests); they only configure the client. A test that
# does talk JMAP reaches other methods, and those die.
sub ua { return }
sub DefaultUsing { return }
sub AUTOLOAD {
    die "$AUTOLOAD: Mail::JMAPTalk is a stand-in (Debian 13 does not package it), and this test needs the real module\n";
}
1;
