// Checkpoints: our own binary format.
//
//   magic "COPECKPT" (8 bytes), u32 version, u32 section count,
//   then per section: u32 name length, name bytes, u64 payload size, u32 CRC32 (zlib) of the
//   payload, payload. The first section is "config" (the resolved config as JSON text).
// Little-endian. Written to <path>.tmp, fsync'd, renamed over <path> (atomic), then the folder is
// fsync'd, so a crash or a full disk never leaves a half-written file under the final name.
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CHECKPOINT_VERSION 1

typedef struct {
    const char *name;
    void *data;     // write: the bytes; read: where to put them (NULL: the reader allocates)
    size_t size;    // write: byte count; read: the expected count (0: any, reader allocates)
} CkptSection;

// Writes the sections atomically. Returns 0, or -1 with a message in err (e.g. the disk is full);
// on failure the file at `path`, if any, is untouched.
int checkpoint_write(const char *path, const CkptSection *sections, int n, char *err, int errlen);

// Reads the named sections (any order in the file; all must be present with the expected size and
// a matching CRC). Sections with data == NULL are malloc'd (size set; text gets a NUL after it).
// Returns 0, or -1 with a message naming the file and the bad section.
int checkpoint_read(const char *path, CkptSection *sections, int n, char *err, int errlen);

// Reads the whole file and checks every section's CRC. Returns 0, or -1 with the reason in err.
int checkpoint_verify(const char *path, char *err, int errlen);

// A run folder's checkpoints: ckpt_<step 8 digits>.bin, and `latest` (a text file with the file
// name, itself replaced atomically). checkpoint_save_step writes the step's file, points latest at
// it and deletes all but the newest `keep`. checkpoint_latest gives the path latest points to.
int checkpoint_save_step(const char *run_dir, long step, int keep, const CkptSection *sections, int n, char *err,
                         int errlen);
int checkpoint_latest(const char *run_dir, char *path, int pathlen, char *err, int errlen);
// The newest ckpt_<step>.bin of run_dir with a step below `below_step` whose every CRC checks, as a
// file name in `name`; -1 when there is none.
int checkpoint_newest_intact(const char *run_dir, long below_step, char *name, int namelen);

#endif
