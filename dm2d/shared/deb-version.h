/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Debian's version order (deb-version(7), dpkg's verrevcmp()), for recipe source versions
 * and the choice between two dkms.conf of one package: [EPOCH:]UPSTREAM[-REVISION],
 * epochs compared as numbers, then upstream, then revision, each as alternating runs of
 * non-digits (letters before other characters, '~' before everything, even the end) and
 * of digits (as numbers). So 1.0~rc1 < 1.0 < 1.0+dfsg < 1.0-1 < 1:0.9.
 *
 * A string that dpkg would refuse (an epoch that is not a number) is compared as an
 * upstream version without an epoch, never an error: a version is data from a packager.
 * Returns < 0, 0 or > 0 as a sorts before, the same as, or after b.
 */
int deb_version_compare(const char *a, const char *b);
