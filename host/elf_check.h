/*
 * elf_check.h -- is a buffer a whole ELF shared object for this host?
 *
 * Hot swap reads a component file into memory and checks the bytes before
 * it writes its private copy: a file caught mid-write (a linker or `cp`
 * still at work) is refused here, before dlopen() could map a short file
 * and take SIGBUS. Every part the dynamic loader maps or reads must lie
 * inside the buffer: the ELF header, the program headers, the section
 * headers, and each PT_LOAD, PT_DYNAMIC and PT_NOTE segment. The class
 * (32/64 bit) and byte order must be the host's; the machine field is
 * left to dlopen(), which names it in its own message.
 *
 * Named elf_check.h, not elf.h: host/ is on the include path, and an
 * elf.h there would hide the system's <elf.h>.
 *
 * No I/O, no allocation, no logging. Any thread.
 */
#ifndef APPHOST_HOST_ELF_CHECK_H
#define APPHOST_HOST_ELF_CHECK_H

#include <stddef.h>

/* Room for a GNU build id in hex (20 bytes of SHA-1) and its NUL. */
#define APPHOST_ELF_BUILD_ID_MAX 41

/*
 * Check b[0..n) as above. Returns NULL when it is a whole ELF shared
 * object for this host, else why not as a static text ("not an ELF
 * file", "section headers past the end of the file (truncated: being
 * written?)", ...). Either way build_id (APPHOST_ELF_BUILD_ID_MAX bytes)
 * receives the GNU build id in hex when one was found in a PT_NOTE
 * segment before the check failed, else "none"; a longer id is cut to
 * the first 20 bytes.
 */
const char *apphost_elf_check(const unsigned char *b, size_t n, char *build_id);

#endif
