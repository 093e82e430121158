/* test_elf.c -- apphost_elf_check on byte buffers: a small shared object
 * built here field by field, cut short or changed one field at a time,
 * and a real component read from disk. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf_check.h"
#include "helpers.h"

/*
 * The smallest file that passes: ELF header, two program headers (a
 * PT_LOAD over the whole file, a PT_NOTE with a GNU build id), the note,
 * and one section header at the end.
 */
struct image {
	unsigned char b[1024];
	size_t n;
	size_t phoff, noteoff, notelen, shoff;
};

#define BUILD_ID_LEN 20
static const char want_id[] = "000102030405060708090a0b0c0d0e0f10111213";

static void image_build(struct image *im)
{
	ElfW(Ehdr) eh = {0};
	ElfW(Phdr) ph[2] = {{0}};
	ElfW(Nhdr) nh = {0};
	ElfW(Shdr) sh = {0};
	size_t off;

	memset(im, 0, sizeof(*im));
	im->phoff = sizeof(eh);
	im->noteoff = im->phoff + sizeof(ph);
	im->notelen = sizeof(nh) + 4 + BUILD_ID_LEN;
	im->shoff = im->noteoff + im->notelen;
	im->n = im->shoff + sizeof(sh);
	cr_assert_leq(im->n, sizeof(im->b));

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32;
	eh.e_ident[EI_DATA] = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
				  ? ELFDATA2LSB
				  : ELFDATA2MSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_DYN;
	eh.e_version = EV_CURRENT;
	eh.e_ehsize = sizeof(eh);
	eh.e_phoff = im->phoff;
	eh.e_phentsize = sizeof(ph[0]);
	eh.e_phnum = 2;
	eh.e_shoff = im->shoff;
	eh.e_shentsize = sizeof(sh);
	eh.e_shnum = 1;
	memcpy(im->b, &eh, sizeof(eh));

	ph[0].p_type = PT_LOAD;
	ph[0].p_filesz = ph[0].p_memsz = im->n;
	ph[0].p_align = 4096;
	ph[1].p_type = PT_NOTE;
	ph[1].p_offset = im->noteoff;
	ph[1].p_filesz = ph[1].p_memsz = im->notelen;
	ph[1].p_align = 4;
	memcpy(im->b + im->phoff, ph, sizeof(ph));

	nh.n_namesz = 4;
	nh.n_descsz = BUILD_ID_LEN;
	nh.n_type = NT_GNU_BUILD_ID;
	off = im->noteoff;
	memcpy(im->b + off, &nh, sizeof(nh));
	memcpy(im->b + off + sizeof(nh), "GNU", 4);
	for (size_t i = 0; i < BUILD_ID_LEN; i++)
		im->b[off + sizeof(nh) + 4 + i] = (unsigned char)i;
	memcpy(im->b + im->shoff, &sh, sizeof(sh));
}

static ElfW(Ehdr) * ehdr(struct image *im)
{
	return (ElfW(Ehdr) *)(void *)im->b;
}

static ElfW(Phdr) * phdr(struct image *im, size_t i)
{
	return (ElfW(Phdr) *)(void *)(im->b + im->phoff) + i;
}

Test(elf, good_image_passes_with_its_build_id)
{
	struct image im;
	char id[APPHOST_ELF_BUILD_ID_MAX];
	const char *why;

	image_build(&im);
	why = apphost_elf_check(im.b, im.n, id);
	cr_assert_null(why, "refused: %s", why);
	cr_assert_str_eq(id, want_id);
}

/* What a case does to the good image before the check. */
enum change {
	CUT,	       /* keep the first `arg` bytes */
	NOT_ELF,       /* a shell script instead */
	OTHER_CLASS,   /* the other word size */
	OTHER_ORDER,   /* the other byte order */
	OTHER_MACHINE, /* e_machine of another architecture, same class */
	EXECUTABLE,    /* ET_EXEC, not ET_DYN */
	NO_PHDRS,      /* e_phnum 0 */
	SH_FAR,	       /* section headers start past the end */
	SEG_LONG,      /* PT_LOAD one byte longer than the file */
	NOTE_LONG,     /* PT_NOTE one byte longer than the file */
};

struct elf_case { /* arrays: each case runs in a fresh process */
	char what[48];
	enum change change;
	size_t arg;    /* CUT: bytes kept; from the end when 1000 + k */
	char want[80]; /* start of the reason; "": passes */
};

ParameterizedTestParameters(elf, cases)
{
	static struct elf_case cases[] = {
	    {"empty", CUT, 0, "empty file (being written?)"},
	    {"three bytes of the magic", CUT, 3,
	     "shorter than an ELF header (being written?)"},
	    {"half a header", CUT, sizeof(ElfW(Ehdr)) / 2,
	     "shorter than an ELF header"},
	    {"header only", CUT, sizeof(ElfW(Ehdr)),
	     "program headers missing or past the end of the file"},
	    {"half the program headers", CUT,
	     sizeof(ElfW(Ehdr)) + sizeof(ElfW(Phdr)) / 2,
	     "program headers missing or past the end of the file"},
	    {"last byte missing", CUT, 1000 + 1,
	     "section headers past the end of the file (truncated: being "
	     "written?)"},
	    {"not ELF", NOT_ELF, 0, "not an ELF file"},
	    {"another class", OTHER_CLASS, 0,
	     "ELF class or byte order differs from the host's"},
	    {"another byte order", OTHER_ORDER, 0,
	     "ELF class or byte order differs from the host's"},
	    /* dlopen() refuses it with its own message */
	    {"another machine, same class and order", OTHER_MACHINE, 0, ""},
	    {"an executable", EXECUTABLE, 0, "not an ELF shared object"},
	    {"no program headers", NO_PHDRS, 0,
	     "program headers missing or past the end of the file"},
	    {"section headers past the end", SH_FAR, 0,
	     "section headers past the end of the file"},
	    {"a segment past the end", SEG_LONG, 0,
	     "a segment extends past the end of the file (truncated: being "
	     "written?)"},
	    {"the note past the end", NOTE_LONG, 0,
	     "a segment extends past the end of the file"},
	};
	return cr_make_param_array(struct elf_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct elf_case *c, elf, cases)
{
	char id[APPHOST_ELF_BUILD_ID_MAX];
	struct image im;
	const char *why;
	size_t n;

	image_build(&im);
	n = im.n;
	switch (c->change) {
	case CUT: n = c->arg >= 1000 ? im.n - (c->arg - 1000) : c->arg; break;
	case NOT_ELF:
		n = (size_t)snprintf((char *)im.b, sizeof(im.b),
				     "#!/bin/sh\necho not a library\n");
		break;
	case OTHER_CLASS:
		im.b[EI_CLASS] =
		    im.b[EI_CLASS] == ELFCLASS64 ? ELFCLASS32 : ELFCLASS64;
		break;
	case OTHER_ORDER:
		im.b[EI_DATA] =
		    im.b[EI_DATA] == ELFDATA2LSB ? ELFDATA2MSB : ELFDATA2LSB;
		break;
	case OTHER_MACHINE:
		ehdr(&im)->e_machine =
		    ehdr(&im)->e_machine == EM_AARCH64 ? EM_X86_64 : EM_AARCH64;
		break;
	case EXECUTABLE: ehdr(&im)->e_type = ET_EXEC; break;
	case NO_PHDRS: ehdr(&im)->e_phnum = 0; break;
	case SH_FAR: ehdr(&im)->e_shoff = im.n; break;
	case SEG_LONG: phdr(&im, 0)->p_filesz = im.n + 1; break;
	case NOTE_LONG: phdr(&im, 1)->p_filesz = im.n - im.noteoff + 1; break;
	}
	why = apphost_elf_check(im.b, n, id);
	if (c->want[0] == '\0') {
		cr_assert_null(why, "%s: refused: %s", c->what, why);
		return;
	}
	cr_assert_not_null(why, "%s: passed", c->what);
	cr_assert(strncmp(why, c->want, strlen(c->want)) == 0,
		  "%s: got \"%s\", want \"%s\"", c->what, why, c->want);
}

/* Every length short of the whole file is refused, never read past. */
Test(elf, every_cut_is_refused)
{
	char id[APPHOST_ELF_BUILD_ID_MAX];
	struct image im;

	image_build(&im);
	for (size_t n = 0; n < im.n; n++) {
		/* a copy of exactly n bytes, so ASan sees a read past it */
		unsigned char *b = malloc(n > 0 ? n : 1);

		cr_assert_not_null(b);
		memcpy(b, im.b, n);
		cr_assert_not_null(apphost_elf_check(b, n, id),
				   "%zu of %zu bytes passed", n, im.n);
		free(b);
	}
}

/* A note that claims more than its segment holds gives no build id. */
Test(elf, overlong_note_gives_no_build_id)
{
	char id[APPHOST_ELF_BUILD_ID_MAX];
	struct image im;
	ElfW(Nhdr) nh;

	image_build(&im);
	memcpy(&nh, im.b + im.noteoff, sizeof(nh));
	nh.n_descsz = BUILD_ID_LEN + 8;
	memcpy(im.b + im.noteoff, &nh, sizeof(nh));
	cr_assert_null(apphost_elf_check(im.b, im.n, id));
	cr_assert_str_eq(id, "none");
}

/* A component the build made passes. */
Test(elf, built_component_passes)
{
	char id[APPHOST_ELF_BUILD_ID_MAX];
	const char *path = comp_path("good");
	unsigned char *b;
	const char *why;
	FILE *f;
	long n;

	f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_gt(n, 0);
	rewind(f);
	b = malloc((size_t)n);
	cr_assert_not_null(b);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	why = apphost_elf_check(b, (size_t)n, id);
	cr_assert_null(why, "%s: %s", path, why);
	cr_assert_neq(id[0], '\0');
	free(b);
}
