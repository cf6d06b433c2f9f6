# Units and kernel hooks for dm2d. Included by the top-level CMakeLists.txt.
# Configured copies land in ${CMAKE_BINARY_DIR}/units/ (the tests run them from there).

pkg_get_variable(DM2_SYSTEMD_UNITDIR systemd systemdsystemunitdir)
if(NOT DM2_SYSTEMD_UNITDIR)
	set(DM2_SYSTEMD_UNITDIR ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()
# The kernel packages and kernel-install(8) run hooks from these fixed places only, so they
# do not follow the prefix: under /usr/local nothing would ever run them.
set(DM2_KERNEL_INSTALLDIR /usr/lib/kernel/install.d CACHE PATH
    "kernel-install plugin directory")
set(DM2_KERNEL_HOOKDIR /etc/kernel CACHE PATH
    "Debian kernel hook directory (postinst.d, header_postinst.d, prerm.d)")

set(DM2_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(DM2_SBINDIR ${CMAKE_INSTALL_FULL_SBINDIR})
set(DM2_UNITS_OUT ${CMAKE_BINARY_DIR}/units)

# dm2d.service is a plain unit (so systemd-analyze can check it in the source tree) that
# names /usr/sbin/dm2d; another prefix is substituted here.
file(READ ${CMAKE_CURRENT_LIST_DIR}/dm2d.service DM2_SERVICE_TEXT)
string(REPLACE "ExecStart=/usr/sbin/dm2d" "ExecStart=${DM2_SBINDIR}/dm2d" DM2_SERVICE_TEXT
       "${DM2_SERVICE_TEXT}")
file(WRITE ${DM2_UNITS_OUT}/dm2d.service "${DM2_SERVICE_TEXT}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
	     ${CMAKE_CURRENT_LIST_DIR}/dm2d.service)

foreach(f dm2-kernel-hook 40-dm2.install debian-postinst debian-header-postinst debian-prerm)
	configure_file(${CMAKE_CURRENT_LIST_DIR}/${f}.in ${DM2_UNITS_OUT}/${f} @ONLY
		       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
				GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/dm2d.socket ${DM2_UNITS_OUT}/dm2d.socket COPYONLY)

install(FILES ${DM2_UNITS_OUT}/dm2d.service ${DM2_UNITS_OUT}/dm2d.socket
	DESTINATION ${DM2_SYSTEMD_UNITDIR})
install(PROGRAMS ${DM2_UNITS_OUT}/dm2-kernel-hook DESTINATION ${DM2_LIBEXECDIR}
	RENAME kernel-hook)
install(PROGRAMS ${DM2_UNITS_OUT}/40-dm2.install DESTINATION ${DM2_KERNEL_INSTALLDIR})
install(PROGRAMS ${DM2_UNITS_OUT}/debian-postinst DESTINATION ${DM2_KERNEL_HOOKDIR}/postinst.d
	RENAME dm2)
install(PROGRAMS ${DM2_UNITS_OUT}/debian-header-postinst
	DESTINATION ${DM2_KERNEL_HOOKDIR}/header_postinst.d RENAME dm2)
install(PROGRAMS ${DM2_UNITS_OUT}/debian-prerm DESTINATION ${DM2_KERNEL_HOOKDIR}/prerm.d
	RENAME dm2)

# bash completion for dm2: where bash-completion looks for it below the prefix (it reads
# share/bash-completion/completions of every XDG_DATA_DIRS entry).
set(DM2_BASH_COMPLETIONDIR ${CMAKE_INSTALL_DATADIR}/bash-completion/completions CACHE PATH
    "bash completion directory")
install(FILES ${CMAKE_CURRENT_LIST_DIR}/../completion/dm2 DESTINATION ${DM2_BASH_COMPLETIONDIR})
