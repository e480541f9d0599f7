// The PNG writer: an independent reader here parses the chunks, checks every CRC with zlib,
// inflates the image data and compares the pixels; heat maps are read back the same way.
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "png.h"

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct {
    int width, height, channels;
    int n_chunks, bad_crc;
    char order[64];      // chunk types in order, e.g. "IHDR IDAT IEND "
    uint8_t *pixels;     // decoded (height, width·channels), or NULL
} Decoded;

// Parses a PNG we wrote: signature, chunks with CRCs, IHDR, the concatenated IDATs inflated, and
// filter 0 on every row. Sets d->pixels only when all of that holds.
static void decode(const unsigned char *png, size_t size, Decoded *d) {
    memset(d, 0, sizeof *d);
    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    CHECK(size >= 8 && memcmp(png, sig, 8) == 0, "bad signature");
    if (size < 8 || memcmp(png, sig, 8) != 0) return;
    unsigned char *idat = NULL;
    size_t idat_len = 0, pos = 8;
    int bit_depth = 0, colour = -1, ended = 0;
    while (pos + 12 <= size && !ended) {
        uint32_t len = be32(png + pos);
        if (pos + 12 + len > size) break;
        const unsigned char *type = png + pos + 4, *data = png + pos + 8;
        uLong crc = crc32(crc32(0L, Z_NULL, 0), type, 4 + len);
        if (crc != be32(data + len)) d->bad_crc++;
        strncat(d->order, (const char *)type, 4);
        strcat(d->order, " ");
        d->n_chunks++;
        if (!memcmp(type, "IHDR", 4) && len == 13) {
            d->width = (int)be32(data);
            d->height = (int)be32(data + 4);
            bit_depth = data[8];
            colour = data[9];
            CHECK(data[10] == 0 && data[11] == 0 && data[12] == 0, "IHDR compression/filter/interlace not 0");
        } else if (!memcmp(type, "IDAT", 4)) {
            idat = realloc(idat, idat_len + len);
            memcpy(idat + idat_len, data, len);
            idat_len += len;
        } else if (!memcmp(type, "IEND", 4)) {
            ended = 1;
        }
        pos += 12 + len;
    }
    CHECK(ended && pos == size, "no IEND at the end (stopped at %zu of %zu)", pos, size);
    CHECK(bit_depth == 8 && (colour == 0 || colour == 2), "bit depth %d colour type %d", bit_depth, colour);
    d->channels = colour == 2 ? 3 : 1;
    size_t stride = (size_t)d->width * d->channels;
    uLongf raw_len = (uLongf)((stride + 1) * d->height);
    unsigned char *raw = malloc(raw_len + 1);
    uLongf got = raw_len + 1;
    int zrc = idat ? uncompress(raw, &got, idat, (uLong)idat_len) : Z_DATA_ERROR;
    CHECK(zrc == Z_OK && got == raw_len, "IDAT inflates to %lu bytes (zlib %d), expected %lu", (unsigned long)got, zrc,
          (unsigned long)raw_len);
    if (zrc == Z_OK && got == raw_len && d->bad_crc == 0) {
        d->pixels = malloc(stride * d->height);
        int filters_ok = 1;
        for (int y = 0; y < d->height; y++) {
            filters_ok &= raw[y * (stride + 1)] == 0;
            memcpy(d->pixels + y * stride, raw + y * (stride + 1) + 1, stride);
        }
        CHECK(filters_ok, "a row does not use filter 0");
    }
    free(raw);
    free(idat);
}

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? n : 1);
    *size = fread(buf, 1, n, f);
    fclose(f);
    return buf;
}

static void test_roundtrip(void) {
    int sizes[][3] = {{1, 1, 1}, {7, 3, 1}, {5, 9, 3}, {300, 200, 3}, {64, 64, 1}};
    unsigned long long st = 42;
    for (int t = 0; t < 5; t++) {
        int w = sizes[t][0], h = sizes[t][1], c = sizes[t][2];
        size_t n = (size_t)w * h * c;
        uint8_t *px = malloc(n);
        for (size_t i = 0; i < n; i++) px[i] = (uint8_t)((check_rand(&st) + 1) * 128);
        size_t size = 0;
        unsigned char *png = png_encode(px, w, h, c, &size);
        CHECK(png != NULL, "png_encode(%d, %d, %d) failed", w, h, c);
        if (!png) continue;
        Decoded d;
        decode(png, size, &d);
        CHECK(d.bad_crc == 0, "%d bad CRCs", d.bad_crc);
        CHECK(!strcmp(d.order, "IHDR IDAT IEND "), "chunk order \"%s\"", d.order);
        CHECK(d.width == w && d.height == h && d.channels == c, "IHDR says %d × %d × %d, wrote %d × %d × %d", d.width,
              d.height, d.channels, w, h, c);
        long diff = -1;
        if (d.pixels)
            for (size_t i = 0; i < n && diff < 0; i++)
                if (d.pixels[i] != px[i]) diff = (long)i;
        CHECK(d.pixels && diff < 0, "%d × %d × %d: pixels differ at byte %ld", w, h, c, diff);
        printf("     %3d × %3d × %d: %6zu bytes, CRCs ok, pixels identical\n", w, h, c, size);
        free(d.pixels);
        free(png);
        free(px);
    }
}

static void test_crc_detects_corruption(void) {
    uint8_t px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    size_t size;
    unsigned char *png = png_encode(px, 2, 2, 3, &size);
    png[8 + 8 + 2] ^= 1;  // a byte of IHDR's data (the width)
    uint32_t len = be32(png + 8);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), png + 12, 4 + len);
    CHECK(crc != be32(png + 16 + len), "the IHDR CRC still matches after a flipped bit");
    free(png);
}

static void test_invalid_arguments(void) {
    uint8_t px[4] = {0};
    size_t size;
    CHECK(png_encode(px, 0, 1, 1, &size) == NULL, "width 0 accepted");
    CHECK(png_encode(px, 1, 1, 2, &size) == NULL, "2 channels accepted");
    char err[256] = "";
    CHECK(png_write("/nonexistent-dir/x.png", px, 1, 1, 1, err, sizeof err) == -1 && strstr(err, "/nonexistent-dir/x.png"),
          "unwritable path: rc != -1 or err \"%s\" does not name the file", err);
}

static void test_colormap(void) {
    uint8_t a[3], b[3], mid[3], nan_rgb[3];
    png_colormap(0, a);
    png_colormap(1, b);
    png_colormap(0.5, mid);
    png_colormap(NAN, nan_rgb);
    CHECK(a[0] == 68 && a[1] == 1 && a[2] == 84, "colormap(0) = %d,%d,%d", a[0], a[1], a[2]);
    CHECK(b[0] == 253 && b[1] == 231 && b[2] == 37, "colormap(1) = %d,%d,%d", b[0], b[1], b[2]);
    CHECK(mid[0] == 33 && mid[1] == 145 && mid[2] == 140, "colormap(0.5) = %d,%d,%d", mid[0], mid[1], mid[2]);
    CHECK(!memcmp(nan_rgb, a, 3), "colormap(NaN) is not colormap(0)");
    // lightness (the green channel here) grows monotonically along the map
    int prev = -1, mono = 1;
    for (int i = 0; i <= 100; i++) {
        uint8_t c[3];
        png_colormap(i / 100.0, c);
        mono &= c[1] >= prev;
        prev = c[1];
    }
    CHECK(mono, "green channel not monotone along the colour map");
}

static void test_heatmap(void) {
    // a 3 × 4 causal-style map: NaN above the diagonal
    float m[12] = {0, NAN, NAN, NAN, 0.5f, 1, NAN, NAN, 0.25f, 0.75f, 1, NAN};
    char path[] = "/tmp/test_png_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    char err[256];
    int scale = 5;
    CHECK(png_heatmap(path, m, 3, 4, 0, 1, scale, err, sizeof err) == 0, "png_heatmap: %s", err);
    size_t size = 0;
    uint8_t *file = read_file(path, &size);
    unlink(path);
    Decoded d;
    decode(file, size, &d);
    CHECK(d.width == 4 * scale && d.height == 3 * scale && d.channels == 3, "heat map is %d × %d × %d", d.width,
          d.height, d.channels);
    if (d.pixels) {
        int worst = 0;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) {
                uint8_t want[3] = {224, 224, 224};
                if (!isnan(m[r * 4 + c])) png_colormap(m[r * 4 + c], want);
                for (int y = r * scale; y < (r + 1) * scale; y++)
                    for (int x = c * scale; x < (c + 1) * scale; x++)
                        for (int k = 0; k < 3; k++) {
                            int e = abs(d.pixels[(y * d.width + x) * 3 + k] - want[k]);
                            if (e > worst) worst = e;
                        }
            }
        printf("     heat map 3 × 4 at scale %d: worst pixel difference %d\n", scale, worst);
        CHECK(worst == 0, "heat map pixels differ from the colour map by up to %d", worst);
    }
    free(d.pixels);
    free(file);
}

int main(void) {
    RUN(test_roundtrip);
    RUN(test_crc_detects_corruption);
    RUN(test_invalid_arguments);
    RUN(test_colormap);
    RUN(test_heatmap);
    return check_summary("png");
}
