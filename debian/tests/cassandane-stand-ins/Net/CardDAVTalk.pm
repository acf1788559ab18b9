package Net::CardDAVTalk;
# A stand-in: DebianStandIn.pm and README say what that means.
use strict;
use warnings;
use parent 'DebianStandIn';
our $VERSION = '0.05';
1;
