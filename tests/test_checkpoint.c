// Checkpoint format: round trips, and every way a file can be bad is refused with a message that
// names the file and the section, never a crash; failed writes leave the previous file untouched.
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"

static char tmpdir[64];

// ---- helpers ----

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/copetrain_ckpt_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char sub[4096];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                remove_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static unsigned char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*len + 1);
    if (fread(b, 1, (size_t)*len, f) != (size_t)*len) *len = -1;
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, long len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, (size_t)len, f) != (size_t)len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static int file_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

// The test sections: text, an empty one, a small table and a large (> 1 MiB) float tensor.
enum { NSEC = 4, BIG = 300000 };
static const char *config_json = "{\"model\":{\"d\":64,\"pe\":\"cope\"},\"seed\":1}";
static float *big;
static int32_t small[7] = {1, -2, 3, -4, 5, -6, 7};

static void fill_sections(CkptSection *s) {
    if (!big) {
        big = malloc(sizeof(float) * BIG);
        unsigned long long st = 42;
        for (int i = 0; i < BIG; i++) big[i] = (float)check_rand(&st);
    }
    s[0] = (CkptSection){"config", (void *)config_json, strlen(config_json)};
    s[1] = (CkptSection){"empty", NULL, 0};
    s[2] = (CkptSection){"step_info", small, sizeof small};
    s[3] = (CkptSection){"params", big, sizeof(float) * BIG};
}

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", tmpdir, name); }

// Offsets of a section's fields in a file written by fill_sections (found by walking the header).
typedef struct {
    long name_len_at, size_at, crc_at, payload_at;
    long size;
} Layout;

static Layout layout_of(const unsigned char *b, long len, int k) {
    long pos = 16;
    Layout l = {0};
    for (int i = 0; i <= k && pos < len; i++) {
        uint32_t nl = b[pos] | b[pos + 1] << 8 | b[pos + 2] << 16 | (uint32_t)b[pos + 3] << 24;
        l.name_len_at = pos;
        l.size_at = pos + 4 + nl;
        l.crc_at = l.size_at + 8;
        l.payload_at = l.crc_at + 4;
        l.size = 0;
        for (int j = 7; j >= 0; j--) l.size = l.size << 8 | b[l.size_at + j];
        pos = l.payload_at + l.size;
    }
    return l;
}

// Reads every test section (reader-allocated) and frees them; returns the reader's result.
static int read_all(const char *path, char *err, int errlen) {
    CkptSection r[NSEC];
    fill_sections(r);
    for (int i = 0; i < NSEC; i++) r[i] = (CkptSection){r[i].name, NULL, 0};
    int rc = checkpoint_read(path, r, NSEC, err, errlen);
    for (int i = 0; i < NSEC; i++) {
        if (rc != 0) CHECK(r[i].data == NULL, "failed read left section '%s' allocated", r[i].name);
        free(r[i].data);
    }
    return rc;
}

// ---- tests ----

static void test_round_trip(void) {
    char path[256], err[512];
    path_in(path, sizeof path, "rt.bin");
    CkptSection w[NSEC];
    fill_sections(w);
    CHECK(checkpoint_write(path, w, NSEC, err, sizeof err) == 0, "write: %s", err);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!file_exists(tmp), "%s left behind", tmp);

    long len;
    unsigned char *b = slurp(path, &len);
    CHECK(b && memcmp(b, "COPECKPT", 8) == 0 && b[8] == CHECKPOINT_VERSION && b[12] == NSEC,
          "header is not magic, version, count");
    long expect = 16;
    for (int i = 0; i < NSEC; i++) expect += 4 + (long)strlen(w[i].name) + 8 + 4 + (long)w[i].size;
    CHECK(len == expect, "file is %ld bytes, expected %ld", len, expect);
    CHECK(len > (1 << 20), "large section should make the file > 1 MiB");
    free(b);

    // Reader-allocated, in another order than the file.
    CkptSection r[NSEC] = {{"params", NULL, 0}, {"empty", NULL, 0}, {"config", NULL, 0}, {"step_info", NULL, 0}};
    CHECK(checkpoint_read(path, r, NSEC, err, sizeof err) == 0, "read: %s", err);
    CHECK(r[0].size == w[3].size && memcmp(r[0].data, big, r[0].size) == 0, "params differ");
    CHECK(r[1].size == 0 && r[1].data != NULL && ((char *)r[1].data)[0] == '\0', "empty section");
    CHECK(r[2].size == strlen(config_json) && strcmp(r[2].data, config_json) == 0, "config text not NUL-terminated");
    CHECK(r[3].size == sizeof small && memcmp(r[3].data, small, sizeof small) == 0, "step_info differs");
    for (int i = 0; i < NSEC; i++) free(r[i].data);

    // Into the caller's buffers, a subset of the sections, one with a required size via malloc.
    int32_t got_small[7] = {0};
    CkptSection s[2] = {{"step_info", got_small, sizeof got_small}, {"params", NULL, sizeof(float) * BIG}};
    CHECK(checkpoint_read(path, s, 2, err, sizeof err) == 0, "subset read: %s", err);
    CHECK(memcmp(got_small, small, sizeof small) == 0, "step_info differs in caller buffer");
    CHECK(s[1].data && memcmp(s[1].data, big, s[1].size) == 0, "params differ (sized)");
    free(s[1].data);

    // Zero sections is a valid (if useless) file.
    path_in(path, sizeof path, "none.bin");
    CHECK(checkpoint_write(path, NULL, 0, err, sizeof err) == 0, "write of 0 sections: %s", err);
    CHECK(checkpoint_read(path, NULL, 0, err, sizeof err) == 0, "read of 0 sections: %s", err);
}

static void test_bad_sections_refused_on_write(void) {
    char path[256], err[512];
    path_in(path, sizeof path, "badw.bin");
    CkptSection dup[2] = {{"a", small, 4}, {"a", small, 4}};
    CHECK(checkpoint_write(path, dup, 2, err, sizeof err) != 0 && contains(err, "'a'"), "duplicate: %s", err);
    CkptSection noname[1] = {{"", small, 4}};
    CHECK(checkpoint_write(path, noname, 1, err, sizeof err) != 0, "empty name accepted");
    CkptSection nodata[1] = {{"x", NULL, 4}};
    CHECK(checkpoint_write(path, nodata, 1, err, sizeof err) != 0 && contains(err, "'x'"), "no data: %s", err);
    CHECK(!file_exists(path), "refused write created %s", path);
}

static void write_reference(const char *path) {
    char err[512];
    CkptSection w[NSEC];
    fill_sections(w);
    if (checkpoint_write(path, w, NSEC, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

static void test_crc_names_corrupted_section(void) {
    char path[256], bad[256], err[512];
    path_in(path, sizeof path, "crc.bin");
    path_in(bad, sizeof bad, "crc_bad.bin");
    write_reference(path);
    long len;
    unsigned char *b = slurp(path, &len);
    CkptSection w[NSEC];
    fill_sections(w);
    for (int k = 0; k < NSEC; k++) {
        Layout l = layout_of(b, len, k);
        // Flip a payload byte (the middle one); an empty payload has none, so flip its stored CRC.
        long at = l.size > 0 ? l.payload_at + l.size / 2 : l.crc_at;
        b[at] ^= 0x10;
        spit(bad, b, len);
        b[at] ^= 0x10;
        int rc = read_all(bad, err, sizeof err);
        char want[64];
        snprintf(want, sizeof want, "'%s'", w[k].name);
        CHECK(rc != 0 && contains(err, "CRC") && contains(err, want) && contains(err, bad),
              "corrupt byte in '%s' at %ld: got rc %d, message \"%s\"", w[k].name, at, rc, err);
        if (k == 0) printf("     e.g.: %s\n", err);
    }
    free(b);
}

static void test_truncation_refused(void) {
    char path[256], bad[256], err[512];
    path_in(path, sizeof path, "trunc.bin");
    path_in(bad, sizeof bad, "trunc_bad.bin");
    write_reference(path);
    long len;
    unsigned char *b = slurp(path, &len);
    // Every offset through the headers and the small sections, then a stride through the large
    // payload, and each byte just before the end.
    Layout big_l = layout_of(b, len, 3);
    int tried = 0, refused = 0, named = 0;
    for (long cut = 0; cut < len; cut++) {
        if (cut > big_l.payload_at + 64 && cut < len - 64 && cut % 4099 != 0) continue;
        spit(bad, b, cut);
        int rc = read_all(bad, err, sizeof err);
        tried++;
        if (rc != 0) refused++;
        if (rc != 0 && contains(err, bad) && (contains(err, "truncated") || (cut < 8 && contains(err, "magic"))))
            named++;
        else
            CHECK(0, "cut at %ld of %ld: rc %d, message \"%s\"", cut, len, rc, err);
        if (cut == big_l.payload_at + 10) printf("     e.g.: %s\n", err);
    }
    printf("     %d truncations tried, %d refused, %d with a truncation message\n", tried, refused, named);
    CHECK(refused == tried, "a truncated file was accepted");
    // Trailing garbage is refused too.
    unsigned char *longer = malloc((size_t)len + 3);
    memcpy(longer, b, (size_t)len);
    memset(longer + len, 0xab, 3);
    spit(bad, longer, len + 3);
    CHECK(read_all(bad, err, sizeof err) != 0 && contains(err, "after the last section"), "trailing: %s", err);
    free(longer);
    free(b);
}

// Random damage to the framing (names, lengths, sizes, counts) must be refused without a crash.
static void test_garbage_never_crashes(void) {
    char path[256], bad[256], err[512];
    path_in(path, sizeof path, "garbage.bin");
    path_in(bad, sizeof bad, "garbage_bad.bin");
    // Small sections only, so the whole file is framing-dense and quick to rewrite.
    CkptSection w[3] = {{"config", (void *)config_json, strlen(config_json)}, {"e", NULL, 0}, {"s", small, 12}};
    CHECK(checkpoint_write(path, w, 3, err, sizeof err) == 0, "%s", err);
    long len;
    unsigned char *b = slurp(path, &len);
    unsigned long long st = 7;
    int accepted = 0;
    for (int it = 0; it < 3000; it++) {
        unsigned char *c = malloc((size_t)len);
        memcpy(c, b, (size_t)len);
        int flips = 1 + it % 4;
        for (int f = 0; f < flips; f++) {
            long at = 8 + (long)((check_rand(&st) * 0.5 + 0.5) * (double)(len - 8));
            if (at >= len) at = len - 1;
            c[at] = (unsigned char)(int)((check_rand(&st) * 0.5 + 0.5) * 256);
        }
        spit(bad, c, len);
        free(c);
        CkptSection r[3] = {{"config", NULL, 0}, {"e", NULL, 0}, {"s", NULL, 0}};
        int rc = checkpoint_read(bad, r, 3, err, sizeof err);
        if (rc == 0) accepted++;
        for (int i = 0; i < 3; i++) free(r[i].data);
    }
    // Every flip is detected unless it rewrote a byte with its own value.
    printf("     3000 damaged files, %d accepted (a flip to the same value)\n", accepted);
    CHECK(accepted < 30, "%d damaged files accepted", accepted);
    // Pure garbage after a valid magic and version.
    for (int it = 0; it < 500; it++) {
        unsigned char g[200];
        memcpy(g, "COPECKPT\x01\0\0\0", 12);
        for (int i = 12; i < 200; i++) g[i] = (unsigned char)(int)((check_rand(&st) * 0.5 + 0.5) * 256);
        if (it % 2) g[12] = 2, g[13] = g[14] = g[15] = 0;  // plausible counts too
        spit(bad, g, 12 + it % 188);
        CkptSection r[1] = {{"config", NULL, 0}};
        CHECK(checkpoint_read(bad, r, 1, err, sizeof err) != 0, "garbage accepted");
        free(r[0].data);
    }
    free(b);
}

static void test_bad_magic_and_version(void) {
    char path[256], bad[256], err[512];
    path_in(path, sizeof path, "mv.bin");
    path_in(bad, sizeof bad, "mv_bad.bin");
    write_reference(path);
    long len;
    unsigned char *b = slurp(path, &len);
    b[0] = 'X';
    spit(bad, b, len);
    CHECK(read_all(bad, err, sizeof err) != 0 && contains(err, "magic") && contains(err, bad), "magic: %s", err);
    printf("     e.g.: %s\n", err);
    b[0] = 'C';
    b[8] = 2;
    spit(bad, b, len);
    CHECK(read_all(bad, err, sizeof err) != 0 && contains(err, "version 2") && contains(err, "version 1"),
          "version: %s", err);
    printf("     e.g.: %s\n", err);
    spit(bad, "hello", 5);
    CHECK(read_all(bad, err, sizeof err) != 0 && contains(err, "magic"), "short text file: %s", err);
    free(b);
}

static void test_missing_file_and_section(void) {
    char path[256], err[512];
    path_in(path, sizeof path, "does_not_exist.bin");
    CHECK(read_all(path, err, sizeof err) != 0 && contains(err, path) && contains(err, "no such file"), "missing: %s",
          err);
    path_in(path, sizeof path, "ms.bin");
    write_reference(path);
    CkptSection r[2] = {{"config", NULL, 0}, {"adam_m", NULL, 0}};
    CHECK(checkpoint_read(path, r, 2, err, sizeof err) != 0 && contains(err, "missing section 'adam_m'") &&
              contains(err, path),
          "missing section: %s", err);
    CHECK(r[0].data == NULL && r[1].data == NULL, "failed read left sections allocated");
    printf("     e.g.: %s\n", err);
}

static void test_size_mismatch(void) {
    char path[256], err[512], want[128];
    path_in(path, sizeof path, "sz.bin");
    write_reference(path);
    float buf[10];
    CkptSection r[1] = {{"params", buf, sizeof buf}};
    CHECK(checkpoint_read(path, r, 1, err, sizeof err) != 0, "size mismatch accepted");
    snprintf(want, sizeof want, "'params' has %zu bytes, expected %zu", sizeof(float) * BIG, sizeof buf);
    CHECK(contains(err, want) && contains(err, path), "message \"%s\" lacks \"%s\"", err, want);
    CHECK(r[0].data == buf && r[0].size == sizeof buf, "caller's section changed");
    printf("     e.g.: %s\n", err);
    CkptSection a[1] = {{"step_info", NULL, 3}};
    CHECK(checkpoint_read(path, a, 1, err, sizeof err) != 0 && contains(err, "expected 3"), "sized alloc: %s", err);
    CHECK(a[0].data == NULL && a[0].size == 3, "failed read changed the request");
}

static void test_save_step_keeps_last_k(void) {
    char run[256], err[512], path[512], want[512];
    path_in(run, sizeof run, "run");
    mkdir(run, 0755);
    CHECK(checkpoint_latest(run, path, sizeof path, err, sizeof err) != 0 && contains(err, "no checkpoint"),
          "latest before any save: %s", err);
    printf("     e.g.: %s\n", err);
    // An unrelated file and a checkpoint from a later step (an earlier, longer run) must survive.
    char other[512];
    snprintf(other, sizeof other, "%s/ckpt_notes.txt", run);
    spit(other, "x", 1);
    snprintf(other, sizeof other, "%s/ckpt_00000900.bin", run);
    spit(other, "x", 1);

    for (long step = 100; step <= 600; step += 100) {
        int32_t payload[2] = {(int32_t)step, 7};
        CkptSection w[2] = {{"config", (void *)config_json, strlen(config_json)}, {"step", payload, sizeof payload}};
        CHECK(checkpoint_save_step(run, step, 3, w, 2, err, sizeof err) == 0, "save %ld: %s", step, err);
        CHECK(checkpoint_latest(run, path, sizeof path, err, sizeof err) == 0, "latest: %s", err);
        snprintf(want, sizeof want, "%s/ckpt_%08ld.bin", run, step);
        CHECK(strcmp(path, want) == 0, "latest is %s, want %s", path, want);
        int32_t got[2] = {0};
        CkptSection r[1] = {{"step", got, sizeof got}};
        CHECK(checkpoint_read(path, r, 1, err, sizeof err) == 0 && got[0] == step, "read back step %ld: %s", step,
              err);
    }
    for (long step = 100; step <= 600; step += 100) {
        snprintf(want, sizeof want, "%s/ckpt_%08ld.bin", run, step);
        CHECK(file_exists(want) == (step >= 400), "%s %s", want, step >= 400 ? "deleted" : "kept");
    }
    CHECK(file_exists(other), "a later step's checkpoint was deleted");
    snprintf(other, sizeof other, "%s/ckpt_notes.txt", run);
    CHECK(file_exists(other), "an unrelated file was deleted");
    long len;
    snprintf(want, sizeof want, "%s/latest", run);
    char *latest = (char *)slurp(want, &len);
    CHECK(latest && len == 18 && memcmp(latest, "ckpt_00000600.bin\n", 18) == 0, "latest holds the name + newline");
    free(latest);
    snprintf(want, sizeof want, "%s/latest.tmp", run);
    CHECK(!file_exists(want), "latest.tmp left behind");

    CkptSection w[1] = {{"config", (void *)config_json, strlen(config_json)}};
    CHECK(checkpoint_save_step(run, 700, 0, w, 1, err, sizeof err) != 0 && contains(err, "keep"), "keep 0: %s", err);

    // A latest pointing at a file that is gone, and one holding garbage.
    snprintf(want, sizeof want, "%s/latest", run);
    spit(want, "ckpt_00000100.bin\n", 18);
    CHECK(checkpoint_latest(run, path, sizeof path, err, sizeof err) != 0 && contains(err, "does not exist"),
          "dangling latest: %s", err);
    spit(want, "../../etc/passwd\n", 17);
    CHECK(checkpoint_latest(run, path, sizeof path, err, sizeof err) != 0 && contains(err, "file name"),
          "garbage latest: %s", err);
}

// checkpoint_verify checks every section's CRC (checkpoint_read only those it is asked for), and
// checkpoint_newest_intact finds the newest older checkpoint that verifies.
static void test_verify_and_newest_intact(void) {
    char run[256], err[512], path[512], name[64];
    path_in(run, sizeof run, "intact");
    mkdir(run, 0755);
    int32_t payload[64] = {0};
    for (long step = 10; step <= 30; step += 10) {
        payload[0] = (int32_t)step;
        CkptSection w[2] = {{"config", (void *)config_json, strlen(config_json)}, {"data", payload, sizeof payload}};
        CHECK(checkpoint_save_step(run, step, 5, w, 2, err, sizeof err) == 0, "save %ld: %s", step, err);
    }
    CHECK(checkpoint_newest_intact(run, 31, name, sizeof name) == 0 && !strcmp(name, "ckpt_00000030.bin"), "newest: %s",
          name);
    for (long step = 30; step >= 20; step -= 10) {  // corrupt 30, then 20: a payload byte of "data"
        snprintf(path, sizeof path, "%s/ckpt_%08ld.bin", run, step);
        long len = 0;
        unsigned char *b = slurp(path, &len);
        b[len - 10] ^= 1;
        spit(path, b, len);
        free(b);
        CkptSection cfg = {"config", NULL, 0};
        CHECK(checkpoint_read(path, &cfg, 1, err, sizeof err) == 0, "reading only the intact section: %s", err);
        free(cfg.data);
        CHECK(checkpoint_verify(path, err, sizeof err) != 0 && contains(err, "CRC") && contains(err, "'data'"),
              "verify of a corrupt file: %s", err);
    }
    CHECK(checkpoint_newest_intact(run, 31, name, sizeof name) == 0 && !strcmp(name, "ckpt_00000010.bin"),
          "newest intact is %s, want ckpt_00000010.bin", name);
    CHECK(checkpoint_newest_intact(run, 10, name, sizeof name) != 0, "none below step 10, got %s", name);
}

static void test_failed_write_leaves_old_file(void) {
    char path[256], tmp[300], err[512];
    CkptSection w[NSEC];
    fill_sections(w);

    // Into a folder that does not exist.
    path_in(path, sizeof path, "no/such/dir/x.bin");
    CHECK(checkpoint_write(path, w, NSEC, err, sizeof err) != 0 && contains(err, path) &&
              contains(err, strerror(ENOENT)),
          "nonexistent folder: %s", err);
    printf("     e.g.: %s\n", err);

    // An existing checkpoint, and <path>.tmp made a folder so the tmp file cannot be created.
    path_in(path, sizeof path, "keep.bin");
    write_reference(path);
    long len0, len1;
    unsigned char *before = slurp(path, &len0);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    mkdir(tmp, 0755);
    CkptSection other[1] = {{"config", "{}", 2}};
    CHECK(checkpoint_write(path, other, 1, err, sizeof err) != 0 && contains(err, path), "tmp is a folder: %s", err);
    unsigned char *after = slurp(path, &len1);
    CHECK(len0 == len1 && memcmp(before, after, (size_t)len0) == 0, "existing checkpoint changed by a failed write");
    free(after);
    rmdir(tmp);

    // A full disk: <path>.tmp is a link to /dev/full, so the writes fail with ENOSPC.
    if (symlink("/dev/full", tmp) == 0) {
        CHECK(checkpoint_write(path, other, 1, err, sizeof err) != 0 && contains(err, path) &&
                  contains(err, strerror(ENOSPC)),
              "full disk: %s", err);
        printf("     e.g.: %s\n", err);
        after = slurp(path, &len1);
        CHECK(len0 == len1 && memcmp(before, after, (size_t)len0) == 0, "existing checkpoint changed by a full disk");
        CHECK(!file_exists(tmp), "tmp file left behind after a failed write");
        free(after);
        CHECK(read_all(path, err, sizeof err) == 0, "old checkpoint no longer reads: %s", err);
        unlink(tmp);
    } else {
        printf("     (no symlink to /dev/full: full-disk case skipped)\n");
    }

    // A failed save_step leaves `latest` pointing at the previous checkpoint.
    char run[256], latest[512];
    path_in(run, sizeof run, "run_fail");
    mkdir(run, 0755);
    CHECK(checkpoint_save_step(run, 1, 2, w, NSEC, err, sizeof err) == 0, "save 1: %s", err);
    snprintf(tmp, sizeof tmp, "%s/ckpt_00000002.bin.tmp", run);
    mkdir(tmp, 0755);
    CHECK(checkpoint_save_step(run, 2, 2, w, NSEC, err, sizeof err) != 0, "save 2 should fail");
    CHECK(checkpoint_latest(run, latest, sizeof latest, err, sizeof err) == 0 && contains(latest, "ckpt_00000001.bin"),
          "latest moved after a failed save: %s", latest);
    rmdir(tmp);
    free(before);
}

int main(void) {
    RUN(test_verify_and_newest_intact);
    make_tmpdir();
    RUN(test_round_trip);
    RUN(test_bad_sections_refused_on_write);
    RUN(test_crc_names_corrupted_section);
    RUN(test_truncation_refused);
    RUN(test_garbage_never_crashes);
    RUN(test_bad_magic_and_version);
    RUN(test_missing_file_and_section);
    RUN(test_size_mismatch);
    RUN(test_save_step_keeps_last_k);
    RUN(test_failed_write_leaves_old_file);
    remove_tree(tmpdir);
    free(big);
    return check_summary("checkpoint");
}
