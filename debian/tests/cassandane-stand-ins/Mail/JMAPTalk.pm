package Mail::JMAPTalk;
# A stand-in: DebianStandIn.pm and README say what that means.
use strict;
use warnings;
use parent 'DebianStandIn';
our $VERSION = '0.15';
# Cassandane's set-up calls these on every suite that enables JMAP (Sieve
# does, for its iMIP tests); they only configure the client. A test that
# does talk JMAP reaches other methods, and those die.
sub ua { return }
sub DefaultUsing { return }
1;
