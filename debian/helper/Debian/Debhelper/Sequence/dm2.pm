#!/usr/bin/perl
# dh sequence addon: "dh $@ --with dm2" or Build-Depends: dh-sequence-dm2 runs dh_dm2
# after dh_install, as dh_dkms runs.
use strict;
use warnings;
use Debian::Debhelper::Dh_Lib;

insert_after('dh_install', 'dh_dm2');

1;
