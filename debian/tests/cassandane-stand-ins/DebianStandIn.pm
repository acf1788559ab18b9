package DebianStandIn;
# What every stand-in here is (README): it loads, and makes objects, so that
# set-up code which only builds a client passes; any method called on one
# dies, naming the module it stands in for.
use strict;
use warnings;
our $AUTOLOAD;
sub new { my ($class) = @_; return bless {}, $class }
sub new_fromstring { my ($class) = @_; return bless {}, $class }
sub DESTROY { }
sub AUTOLOAD {
    my ($module) = $AUTOLOAD =~ /^(.*)::/;
    die "$AUTOLOAD: $module is a stand-in (Debian 13 does not package it), and this test needs the real module\n";
}
1;
