/* elf_check.c -- see elf_check.h. */
#include "elf_check.h"

#include <elf.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BUILD_ID_HEX_MAX APPHOST_ELF_BUILD_ID_MAX

#if __SIZEOF_POINTER__ == 8
#define HOST_ELF_CLASS ELFCLASS64
#else
#define HOST_ELF_CLASS ELFCLASS32
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ELF_DATA ELFDATA2LSB
#else
#define HOST_ELF_DATA ELFDATA2MSB
#endif

static bool fits(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

/* Find the GNU build id in the notes at b[off..off+len); hex into id. */
static void find_build_id(const unsigned char *b, uint64_t off, uint64_t len,
			  uint64_t align, char *id)
{
	uint64_t end = off + len;

	align = align == 8 ? 8 : 4;
	while (off + sizeof(ElfW(Nhdr)) <= end) {
		ElfW(Nhdr) nh;
		uint64_t name, desc, next;

		memcpy(&nh, b + off, sizeof(nh));
		name = off + sizeof(nh);
		desc = name + ((nh.n_namesz + align - 1) & ~(align - 1));
		next = desc + ((nh.n_descsz + align - 1) & ~(align - 1));
		if (desc + nh.n_descsz > end)
			return;
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    memcmp(b + name, "GNU", 4) == 0) {
			size_t n = nh.n_descsz;

			if (n > (BUILD_ID_HEX_MAX - 1) / 2)
				n = (BUILD_ID_HEX_MAX - 1) / 2;
			for (size_t i = 0; i < n; i++)
				snprintf(id + 2 * i, 3, "%02x", b[desc + i]);
			return;
		}
		off = next;
	}
}

const char *apphost_elf_check(const unsigned char *b, size_t n, char *build_id)
{
	ElfW(Ehdr) eh;

	snprintf(build_id, BUILD_ID_HEX_MAX, "none");
	if (n == 0)
		return "empty file (being written?)";
	if (memcmp(b, ELFMAG, n < SELFMAG ? n : SELFMAG) != 0)
		return "not an ELF file";
	if (n < sizeof(eh))
		return "shorter than an ELF header (being written?)";
	memcpy(&eh, b, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != HOST_ELF_CLASS ||
	    eh.e_ident[EI_DATA] != HOST_ELF_DATA)
		return "ELF class or byte order differs from the host's";
	if (eh.e_type != ET_DYN)
		return "not an ELF shared object";
	if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
	    !fits(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)), n))
		return "program headers missing or past the end of the file "
		       "(truncated: being written?)";
	if (eh.e_shoff != 0 &&
	    !fits(eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize, n))
		return "section headers past the end of the file (truncated: "
		       "being written?)";
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		ElfW(Phdr) ph;

		memcpy(&ph, b + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC ||
		     ph.p_type == PT_NOTE) &&
		    !fits(ph.p_offset, ph.p_filesz, n))
			return "a segment extends past the end of the file "
			       "(truncated: being written?)";
		if (ph.p_type == PT_NOTE && strcmp(build_id, "none") == 0)
			find_build_id(b, ph.p_offset, ph.p_filesz, ph.p_align,
				      build_id);
	}
	return NULL;
}
